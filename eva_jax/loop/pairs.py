"""Preference pairs from a reward matrix, and the old/new mix of a round's training pairs.

The paper's pair is best vs worst of the n responses of a prompt. A prompt yields no pair when it
has fewer than two valid (finite) rewards or when its best and worst tie within `min_gap`: such a
pair states no preference, and DPO on it only moves both responses the same way. `min_chosen` (a
verifiable-task option, off in the paper) also drops prompts whose best response scores below it:
with graded rewards the best of n on a hard prompt is often a wrong answer with partial credit,
and the chosen-response NLL term would teach it.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Pairs:
  """`[num_pairs]` int arrays: the prompt row and the chosen/rejected response columns."""

  prompt: np.ndarray
  chosen: np.ndarray
  rejected: np.ndarray
  gap: np.ndarray  # float32 reward(chosen) - reward(rejected) > min_gap

  def __len__(self) -> int:
    return len(self.prompt)

  def take(self, index: np.ndarray) -> "Pairs":
    return Pairs(self.prompt[index], self.chosen[index], self.rejected[index], self.gap[index])


def best_vs_worst(rewards: np.ndarray, min_gap: float = 0.0, min_chosen: float = -np.inf) -> Pairs:
  """One pair per prompt row of `rewards` `[P, n]` (NaN = dropped response); ties go to the lower column."""
  rewards = np.asarray(rewards, np.float64)
  if rewards.ndim != 2:
    raise ValueError(f"rewards must be [prompts, n], got shape {rewards.shape}")
  valid = np.isfinite(rewards)
  counts = valid.sum(axis=1)
  best = np.argmax(np.where(valid, rewards, -np.inf), axis=1)
  worst = np.argmin(np.where(valid, rewards, np.inf), axis=1)
  rows = np.arange(len(rewards))
  with np.errstate(invalid="ignore"):
    gap = rewards[rows, best] - rewards[rows, worst]
  keep = (counts >= 2) & (gap > min_gap) & (rewards[rows, best] >= min_chosen)
  return Pairs(rows[keep], best[keep], worst[keep], gap[keep].astype(np.float32))


def rehearsal(rewards: np.ndarray, min_chosen: float = -np.inf) -> Pairs:
  """(best, best) "pairs" of the prompts that yield no preference pair: every valid response ties.

  A pair whose chosen and rejected are the same response has a DPO-family margin of exactly 0 and
  no preference gradient; only the solver's chosen-response NLL term trains on it. So these rows
  rehearse the model's own answers to prompts it has already mastered (an option, off in the paper):
  training only on frontier pairs can shift behaviour on easy prompts that yield no pairs at all.
  Rows need at least one valid reward, all valid rewards equal, and the best >= `min_chosen`.
  """
  rewards = np.asarray(rewards, np.float64)
  valid = np.isfinite(rewards)
  best = np.argmax(np.where(valid, rewards, -np.inf), axis=1)
  rows = np.arange(len(rewards))
  high = np.where(valid, rewards, -np.inf).max(axis=1, initial=-np.inf)
  low = np.where(valid, rewards, np.inf).min(axis=1, initial=np.inf)
  keep = valid.any(axis=1) & (high == low) & (high >= min_chosen)
  return Pairs(rows[keep], best[keep], best[keep], np.zeros(int(keep.sum()), np.float32))


def concat(a: Pairs, b: Pairs) -> Pairs:
  return Pairs(
    *(np.concatenate([getattr(a, f), getattr(b, f)]) for f in ("prompt", "chosen", "rejected", "gap"))
  )


def mix(new: int, old: int, old_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
  """Indices into the new and old pair sets for a training set that is `old_fraction` old pairs.

  All new pairs are used; old pairs are drawn without replacement to make up `old_fraction` of the
  total (fewer if there are not enough). Returns (new_index, old_index), each shuffled.
  """
  if not 0.0 <= old_fraction < 1.0:
    raise ValueError(f"old_fraction must be in [0, 1), got {old_fraction}")
  wanted = int(round(new * old_fraction / (1.0 - old_fraction)))
  take_old = min(wanted, old)
  return rng.permutation(new), rng.choice(old, size=take_old, replace=False)
