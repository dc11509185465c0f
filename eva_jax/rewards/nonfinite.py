"""The NaN/inf reward policy: a non-finite reward is never passed on silently.

`apply_policy(rewards, policy, prompt_ids)` finds the non-finite rewards and either keeps going
without them (`"drop"`: returns a keep-mask and a report naming each dropped pair's prompt id, and
logs a warning) or stops the round (`"fail"`: raises `NonFiniteRewardError` naming them). A call
whose rewards are all non-finite stops the round under either policy.
"""

from collections.abc import Sequence
import dataclasses

from absl import logging
import numpy as np

POLICIES = ("drop", "fail")


class NonFiniteRewardError(ValueError):
  """A reward source returned NaN or inf under the "fail" policy."""


@dataclasses.dataclass(frozen=True)
class NonFiniteReport:
  """The non-finite rewards of one scoring call (empty when all were finite)."""

  indices: tuple[int, ...]  # rows of the scored batch
  prompt_ids: tuple  # the caller's id of each row's prompt (its row index if none were given)
  values: tuple[float, ...]  # the rewards themselves (nan, inf or -inf)
  total: int  # rows scored

  def __bool__(self) -> bool:
    return bool(self.indices)

  def describe(self, limit: int = 10) -> str:
    shown = ", ".join(
      f"prompt {pid} (row {i}): {v}"
      for i, pid, v in list(zip(self.indices, self.prompt_ids, self.values))[:limit]
    )
    more = f", and {len(self.indices) - limit} more" if len(self.indices) > limit else ""
    return f"{len(self.indices)} of {self.total} rewards are not finite: {shown}{more}"


def find_nonfinite(rewards: np.ndarray, prompt_ids: Sequence | None = None) -> NonFiniteReport:
  rewards = np.asarray(rewards)
  if rewards.ndim != 1:
    raise ValueError(f"rewards must be 1-D, got shape {rewards.shape}")
  if prompt_ids is not None and len(prompt_ids) != len(rewards):
    raise ValueError(f"{len(prompt_ids)} prompt ids for {len(rewards)} rewards")
  bad = np.flatnonzero(~np.isfinite(rewards))
  ids = tuple(int(i) if prompt_ids is None else prompt_ids[i] for i in bad)
  return NonFiniteReport(tuple(int(i) for i in bad), ids, tuple(float(rewards[i]) for i in bad), len(rewards))


def apply_policy(
  rewards: np.ndarray, policy: str, prompt_ids: Sequence | None = None
) -> tuple[np.ndarray, NonFiniteReport]:
  """`(keep_mask, report)`: keep_mask[i] is False for the dropped rows.

  Raises:
    NonFiniteRewardError: under policy "fail" when any reward is NaN or inf.
  """
  if policy not in POLICIES:
    raise ValueError(f"unknown non-finite reward policy {policy!r}; expected one of {POLICIES}")
  report = find_nonfinite(rewards, prompt_ids)
  if report and policy == "fail":
    raise NonFiniteRewardError(f"{report.describe()} (config.reward.nonfinite='fail')")
  if report and len(report.indices) == report.total:
    # Dropping everything would leave a round that learns nothing and averages over nothing.
    raise NonFiniteRewardError(
      f"every reward is non-finite, so there is nothing to keep: {report.describe(limit=3)}; "
      "the reward source is broken (config.reward.nonfinite='drop' drops some rewards, not all)"
    )
  if report:
    logging.warning("dropping responses: %s", report.describe())
  keep = np.ones(report.total, bool)
  keep[list(report.indices)] = False
  return keep, report


def score_with_policy(
  source, prompts: Sequence[str], responses: Sequence[str], policy: str, prompt_ids: Sequence | None = None
) -> tuple[np.ndarray, np.ndarray, NonFiniteReport]:
  """`source.score` then `apply_policy`: `(rewards, keep_mask, report)`, what the eva loop calls."""
  rewards = source.score(prompts, responses)
  keep, report = apply_policy(rewards, policy, prompt_ids)
  return rewards, keep, report
