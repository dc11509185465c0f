"""One prompt of the pool with its lineage and latest reward statistics.

Ids are stable and readable: `g{generation}-{i}` for the i-th prompt created in a generation
(seeds are generation 0). A prompt keeps its id, generation and lineage in every later pool
generation; only its reward statistics change. `root_id` is the seed a prompt descends from.
"""

from collections.abc import Sequence
import dataclasses
import math

import numpy as np

from eva_jax.creator import informativeness

SOURCES = ("seed", "evolved")
STAT_FIELDS = ("n", "mean", "max", "min", "std", "info")
_NAN = math.nan


@dataclasses.dataclass(frozen=True)
class PromptRecord:
  prompt_id: str
  text: str
  parent_id: str  # "" for seeds
  root_id: str  # the seed this prompt descends from (itself for seeds)
  generation: int  # the pool generation that created it
  method: str  # evolution method that made it from its parent; "seed" for seeds
  source: str  # "seed" or "evolved"
  n: int = 0  # valid rewards behind the statistics below (0 = never scored: all NaN)
  mean: float = _NAN
  max: float = _NAN
  min: float = _NAN
  std: float = _NAN
  info: float = _NAN  # raw informativeness score (before pool-wide normalisation)


def prompt_id(generation: int, index: int) -> str:
  return f"g{generation}-{index}"


def seed_records(prompts: Sequence[str]) -> list[PromptRecord]:
  """Generation-0 records for seed prompts, in order."""
  out = []
  for i, text in enumerate(prompts):
    pid = prompt_id(0, i)
    out.append(PromptRecord(pid, text, "", pid, 0, "seed", "seed"))
  return out


def with_stats(
  records: Sequence[PromptRecord], rewards: np.ndarray, mask: np.ndarray | None, metric: str
) -> list[PromptRecord]:
  """Records with statistics and `metric` score from this round's `[len(records), n]` rewards.

  A prompt without a valid reward this round (not sampled, or every response dropped) keeps the
  statistics it had, so `info` always holds the latest score a prompt earned.
  """
  rewards = np.asarray(rewards, np.float64)
  if rewards.ndim != 2 or rewards.shape[0] != len(records):
    raise ValueError(f"rewards must be [{len(records)}, n], got shape {rewards.shape}")
  valid = informativeness.valid_mask(rewards, mask)
  stats = informativeness.reward_stats(rewards, valid)
  stats["info"] = informativeness.score(rewards, valid, metric)
  columns = {k: stats[k].tolist() for k in STAT_FIELDS}
  out = []
  for i, record in enumerate(records):
    if columns["n"][i] == 0:
      out.append(record)
    else:
      out.append(dataclasses.replace(record, **{k: columns[k][i] for k in STAT_FIELDS}))
  return out


def info_scores(records: Sequence[PromptRecord]) -> np.ndarray:
  """The `info` column (NaN for never-scored prompts)."""
  return np.fromiter((r.info for r in records), np.float64, len(records))
