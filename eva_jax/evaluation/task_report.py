"""Per-difficulty report for a verifiable task: exact match and mean reward in each bucket, and overall.

Buckets are the task's difficulty labels (e.g. "3+2" for a 3-digit plus a 2-digit operand), listed in
the order they first appear in the prompts (the task's held-out set runs from easy to hard).
"""

from collections.abc import Sequence
import dataclasses

import numpy as np

from eva_jax.tasks import Task

OVERALL = "all"


@dataclasses.dataclass(frozen=True)
class BucketStats:
  name: str  # difficulty label, or OVERALL
  count: int  # responses in the bucket
  exact_match: float  # share of responses equal to the reference answer (surrounding whitespace ignored)
  mean_reward: float  # mean of the finite rewards; NaN when all were dropped


@dataclasses.dataclass(frozen=True)
class TaskReport:
  task: str
  buckets: tuple[BucketStats, ...]
  overall: BucketStats

  def metrics(self, prefix: str = "eval") -> dict[str, float]:
    """Flat scalars: `{prefix}/exact_match[/bucket]` and `{prefix}/task_reward[/bucket]`."""
    out = {}
    for stats in (self.overall, *self.buckets):
      suffix = "" if stats.name == OVERALL else f"/{stats.name}"
      out[f"{prefix}/exact_match{suffix}"] = stats.exact_match
      out[f"{prefix}/task_reward{suffix}"] = stats.mean_reward
    return out

  def table(self) -> str:
    """A fixed-width text table, one row per bucket and a last row for all of them."""
    width = max(len(s.name) for s in (*self.buckets, self.overall))
    lines = [f"{'bucket':<{width}}  {'n':>6}  {'exact':>7}  {'reward':>7}"]
    for s in (*self.buckets, self.overall):
      lines.append(f"{s.name:<{width}}  {s.count:>6d}  {100 * s.exact_match:>6.1f}%  {s.mean_reward:>7.3f}")
    return "\n".join(lines)


def is_exact(task: Task, prompt: str, response: str) -> bool:
  """True when `response`, stripped, is the task's reference answer to `prompt`."""
  reference = task.reference(prompt)
  if reference is None:
    raise ValueError(f"not a prompt of task {task.name!r}: {prompt[:60]!r}")
  return response.strip() == reference


def _stats(name: str, exact: np.ndarray, rewards: np.ndarray) -> BucketStats:
  finite = rewards[np.isfinite(rewards)]
  mean = float(finite.mean()) if finite.size else float("nan")
  return BucketStats(name, len(exact), float(exact.mean()), mean)


def report(
  task: Task, prompts: Sequence[str], responses: Sequence[str], rewards: Sequence[float] | None = None
) -> TaskReport:
  """Exact match and mean reward per difficulty bucket for (prompt, response) pairs of `task`.

  `rewards` (NaN = dropped) are the rewards to average, e.g. those of a reward model; None uses the
  task's own graded reward. Raises ValueError for a prompt that is not one of the task's.
  """
  if len(prompts) != len(responses):
    raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
  if not prompts:
    raise ValueError("no responses to report on")
  if rewards is None:
    rewards = [task.reward(p, r) for p, r in zip(prompts, responses)]
  rewards = np.asarray(rewards, np.float64)
  if rewards.shape != (len(prompts),):
    raise ValueError(f"got {rewards.shape} rewards for {len(prompts)} responses")
  exact = np.array([is_exact(task, p, r) for p, r in zip(prompts, responses)])
  labels = [task.difficulty(p) for p in prompts]
  in_bucket = {name: np.array(labels) == name for name in dict.fromkeys(labels)}  # first-appearance order
  buckets = tuple(_stats(name, exact[mask], rewards[mask]) for name, mask in in_bucket.items())
  return TaskReport(task.name, buckets, _stats(OVERALL, exact, rewards))
