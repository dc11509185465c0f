"""Informativeness (regret proxies): how much the solver could still gain on a prompt.

Every metric is a pure NumPy function of a `[num_prompts, n]` reward matrix. Responses can be
dropped (a reward that failed, a truncated sample), so the matrix is ragged-safe: an entry counts
only where `mask` is True and the reward is finite (NaN marks a dropped response). A prompt with no
valid response gets a NaN score, which selection treats as "not scored".

Metrics (`METRICS`), per prompt over its m valid rewards r:

  gap       max(r) - min(r)               the paper's default: chosen vs rejected margin
  maxmean   max(r) - mean(r)              room above the solver's average
  var       population variance of r
  mean      mean(r)
  mean_inv  -mean                         hardest prompts first
  gap_inv   -gap                          flattest prompts first
  dts       best - second best            "distance to second": 0 when m == 1
  uniform   1                             every scored prompt equally likely (the ablation)

Every score is a function of the prompt's own rewards only, so it is the same whichever batch it
was scored with (the online loop scores its batches apart and stores the scores). Weights are drawn
from the stored scores min-max normalised over the whole pool (`normalise`); for the inverted
metrics that is 1 - minmax(mean) and 1 - minmax(gap) over the pool, the authors' definition.

The authors' leave-one-out metric is not here: as they wrote it, it averages the deviations of the
rewards from their own mean, which is identically zero.
"""

from collections.abc import Callable

import numpy as np

METRICS = ("gap", "maxmean", "var", "mean", "mean_inv", "gap_inv", "dts", "uniform")


def valid_mask(rewards: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
  """True where a reward counts: inside `mask` (if given) and finite."""
  rewards = np.asarray(rewards, np.float64)
  if rewards.ndim != 2:
    raise ValueError(f"rewards must be [num_prompts, n], got shape {rewards.shape}")
  valid = np.isfinite(rewards)
  if mask is not None:
    mask = np.asarray(mask, bool)
    if mask.shape != rewards.shape:
      raise ValueError(f"mask shape {mask.shape} does not match rewards shape {rewards.shape}")
    valid &= mask
  return valid


def reward_stats(rewards: np.ndarray, mask: np.ndarray | None = None) -> dict[str, np.ndarray]:
  """Per-prompt n, mean, max, min and (population) std over the valid rewards; NaN where n == 0."""
  valid = valid_mask(rewards, mask)
  r = np.where(valid, np.asarray(rewards, np.float64), 0.0)
  n = valid.sum(axis=1)
  scored = n > 0
  safe_n = np.maximum(n, 1)
  mean = r.sum(axis=1) / safe_n
  var = np.where(valid, (r - mean[:, None]) ** 2, 0.0).sum(axis=1) / safe_n
  nan = np.full(len(n), np.nan)
  return {
    "n": n,
    "mean": np.where(scored, mean, nan),
    "max": np.where(scored, np.where(valid, r, -np.inf).max(axis=1, initial=-np.inf), nan),
    "min": np.where(scored, np.where(valid, r, np.inf).min(axis=1, initial=np.inf), nan),
    "std": np.where(scored, np.sqrt(var), nan),
  }


def _dts(rewards: np.ndarray, valid: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
  if rewards.shape[1] < 2:
    return np.zeros(len(rewards))
  ranked = np.sort(np.where(valid, np.asarray(rewards, np.float64), -np.inf), axis=1)
  with np.errstate(invalid="ignore"):  # -inf - -inf on rows with < 2 rewards, replaced below
    return np.where(stats["n"] > 1, ranked[:, -1] - ranked[:, -2], 0.0)


_SCORES: dict[str, Callable[[np.ndarray, np.ndarray, dict[str, np.ndarray]], np.ndarray]] = {
  "gap": lambda r, v, s: s["max"] - s["min"],
  "maxmean": lambda r, v, s: s["max"] - s["mean"],
  "var": lambda r, v, s: s["std"] ** 2,
  "mean": lambda r, v, s: s["mean"],
  "mean_inv": lambda r, v, s: -s["mean"],
  "gap_inv": lambda r, v, s: -(s["max"] - s["min"]),
  "dts": _dts,
  "uniform": lambda r, v, s: np.ones(len(r)),
}


def score(rewards: np.ndarray, mask: np.ndarray | None = None, metric: str = "gap") -> np.ndarray:
  """The `metric` score of every prompt (float64 `[num_prompts]`); NaN for prompts with no valid reward."""
  if metric not in _SCORES:
    raise ValueError(f"unknown informativeness metric {metric!r}; expected one of {list(METRICS)}")
  valid = valid_mask(rewards, mask)
  stats = reward_stats(rewards, valid)
  values = np.asarray(_SCORES[metric](rewards, valid, stats), np.float64)
  return np.where(stats["n"] > 0, values, np.nan)


def normalise(scores: np.ndarray) -> np.ndarray:
  """Min-max over the finite scores to [0, 1]; all equal -> all ones (uniform weights); NaN stays NaN."""
  scores = np.asarray(scores, np.float64)
  finite = np.isfinite(scores)
  if not finite.any():
    return np.full(scores.shape, np.nan)
  low, high = scores[finite].min(), scores[finite].max()
  if high - low <= 1e-12 * max(1.0, abs(high)):
    return np.where(finite, 1.0, np.nan)
  return np.where(finite, (scores - low) / (high - low), np.nan)
