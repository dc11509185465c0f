"""Paired win rates and mean-reward differences with percentile-bootstrap confidence intervals.

Inputs are rewards of the policy and the reference on the same prompts: `[P]`, or `[P, n]` for n
paired samples per prompt. A pair is a win (1) when the policy's reward beats the reference's by
more than `tie_tolerance`, a loss (0) when it trails by more, and a tie (0.5) otherwise. NaN or inf
on either side (a dropped response) removes that pair. The bootstrap resamples prompts, not pairs,
so the n samples of one prompt stay together (they are not independent).
"""

import dataclasses

import numpy as np

_CHUNK_ELEMENTS = 1 << 22  # resampled indices held at once (32 MiB of int64)


@dataclasses.dataclass(frozen=True)
class Estimate:
  """A point estimate and its bootstrap interval [low, high] at `confidence`."""

  value: float
  low: float
  high: float
  confidence: float
  num_prompts: int  # prompts with at least one finite value

  @property
  def half_width(self) -> float:
    return (self.high - self.low) / 2


@dataclasses.dataclass(frozen=True)
class WinRate:
  """Policy vs reference: win rate (ties count half) and mean reward difference, each with a CI."""

  win_rate: Estimate
  reward_diff: Estimate  # mean of policy - reference reward
  wins: int
  ties: int
  losses: int

  @property
  def num_pairs(self) -> int:
    return self.wins + self.ties + self.losses


def outcomes(policy, reference, tie_tolerance: float = 0.0) -> np.ndarray:
  """Per pair: 1.0 win, 0.5 tie (|difference| <= tie_tolerance), 0.0 loss, NaN if either is not finite."""
  policy, reference = np.asarray(policy, np.float64), np.asarray(reference, np.float64)
  if policy.shape != reference.shape:
    raise ValueError(f"policy rewards {policy.shape} and reference rewards {reference.shape} differ in shape")
  if not tie_tolerance >= 0:
    raise ValueError(f"tie_tolerance must be >= 0, got {tie_tolerance}")
  valid = np.isfinite(policy) & np.isfinite(reference)
  diff = np.where(valid, policy - reference, 0.0)
  result = np.where(diff > tie_tolerance, 1.0, np.where(diff < -tie_tolerance, 0.0, 0.5))
  return np.where(valid, result, np.nan)


def _rows(values) -> np.ndarray:
  values = np.asarray(values, np.float64)
  if values.ndim == 1:
    return values[:, None]
  if values.ndim != 2:
    raise ValueError(f"expected [prompts] or [prompts, samples] values, got shape {values.shape}")
  return values


def bootstrap_mean(values, *, num_resamples: int = 1000, seed: int = 0, confidence: float = 0.95) -> Estimate:
  """Mean of the finite entries of `values` ([P] or [P, n]) and a percentile-bootstrap CI over prompts.

  Each resample draws P prompts with replacement and takes the mean of all their finite entries.
  Deterministic for a given `seed`; `num_resamples=0` gives a zero-width interval at the mean.
  """
  if not 0 < confidence < 1:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  if num_resamples < 0:
    raise ValueError(f"num_resamples must be >= 0, got {num_resamples}")
  rows = _rows(values)
  finite = np.isfinite(rows)
  sums, counts = np.where(finite, rows, 0.0).sum(axis=1), finite.sum(axis=1)
  sums, counts = sums[counts > 0], counts[counts > 0]
  if not counts.size:
    raise ValueError("no finite values to average")
  value = float(sums.sum() / counts.sum())
  if num_resamples == 0:
    return Estimate(value, value, value, confidence, len(counts))
  rng = np.random.default_rng(seed)
  per_chunk = max(1, _CHUNK_ELEMENTS // len(counts))
  stats = []
  for start in range(0, num_resamples, per_chunk):
    draws = rng.integers(0, len(counts), size=(min(per_chunk, num_resamples - start), len(counts)))
    stats.append(sums[draws].sum(axis=1) / counts[draws].sum(axis=1))
  low, high = np.quantile(np.concatenate(stats), [(1 - confidence) / 2, (1 + confidence) / 2])
  # Clamp: float round-off can put a quantile of identical means a hair off the mean itself.
  return Estimate(value, min(float(low), value), max(float(high), value), confidence, len(counts))


def win_rate(
  policy,
  reference,
  *,
  tie_tolerance: float = 0.0,
  num_resamples: int = 1000,
  seed: int = 0,
  confidence: float = 0.95,
) -> WinRate:
  """Win rate of `policy` over `reference` rewards (paired, same shape) and the mean reward difference."""
  result = outcomes(policy, reference, tie_tolerance)
  diff = np.where(
    np.isfinite(result), np.asarray(policy, np.float64) - np.asarray(reference, np.float64), np.nan
  )
  settings = dict(num_resamples=num_resamples, seed=seed, confidence=confidence)
  return WinRate(
    win_rate=bootstrap_mean(result, **settings),
    reward_diff=bootstrap_mean(diff, **settings),
    wins=int(np.sum(result == 1.0)),
    ties=int(np.sum(result == 0.5)),
    losses=int(np.sum(result == 0.0)),
  )
