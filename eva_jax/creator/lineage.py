"""Lineage queries over a pool's generations: ancestors, children, per-generation summaries.

`Lineage.from_pool(pool)` reads every committed generation. A prompt appears in each generation
it survives with the same id; queries return its latest record (latest reward statistics).
"""

import collections
from collections.abc import Mapping
from collections.abc import Sequence
import math

import numpy as np

from eva_jax.creator import pool as pool_lib
from eva_jax.creator import records as records_lib


class Lineage:
  def __init__(self, generations: Mapping[int, Sequence[records_lib.PromptRecord]]):
    self.generations = {g: list(generations[g]) for g in sorted(generations)}
    self.by_id: dict[str, records_lib.PromptRecord] = {}
    for recs in self.generations.values():
      self.by_id.update((r.prompt_id, r) for r in recs)
    self._children: dict[str, list[str]] = collections.defaultdict(list)
    for record in sorted(self.by_id.values(), key=lambda r: (r.generation, _index(r.prompt_id))):
      if record.parent_id:
        self._children[record.parent_id].append(record.prompt_id)
    self._depth: dict[str, int] = {}

  @classmethod
  def from_pool(cls, pool: pool_lib.Pool) -> "Lineage":
    return cls({g: pool.read_generation(g) for g in pool.generations()})

  def __getitem__(self, prompt_id: str) -> records_lib.PromptRecord:
    if prompt_id not in self.by_id:
      raise KeyError(f"no prompt {prompt_id!r} in any generation")
    return self.by_id[prompt_id]

  def ancestors(self, prompt_id: str) -> list[records_lib.PromptRecord]:
    """Parent first, seed last; stops early at a parent no generation holds."""
    out, record = [], self[prompt_id]
    while record.parent_id and record.parent_id in self.by_id:
      record = self.by_id[record.parent_id]
      out.append(record)
    return out

  def children(self, prompt_id: str) -> list[records_lib.PromptRecord]:
    """Direct children, in creation order."""
    self[prompt_id]
    return [self.by_id[c] for c in self._children.get(prompt_id, [])]

  def depth(self, prompt_id: str) -> int:
    """Rewrites between a prompt and its seed (0 for seeds)."""
    if prompt_id not in self._depth:
      self._depth[prompt_id] = len(self.ancestors(prompt_id))
    return self._depth[prompt_id]

  def summary(self) -> list[dict]:
    """One row per pool generation: sizes, where its prompts came from, its reward and info statistics."""
    rows = []
    for generation, recs in self.generations.items():
      new = [r for r in recs if r.generation == generation]
      scored = [r for r in recs if r.n > 0]
      rows.append(
        {
          "generation": generation,
          "prompts": len(recs),
          "new": len(new),
          "seeds": sum(r.source == "seed" for r in recs),
          "evolved": sum(r.source == "evolved" for r in recs),
          "scored": len(scored),
          "reward_mean": _mean([r.mean for r in scored]),
          "info_mean": _mean([r.info for r in scored]),
          "depth_mean": _mean([self.depth(r.prompt_id) for r in recs]),
          "new_by_method": dict(collections.Counter(r.method for r in new)),
        }
      )
    return rows


def _index(prompt_id: str) -> int:
  tail = prompt_id.rpartition("-")[2]
  return int(tail) if tail.isdigit() else 0


def _mean(values: Sequence[float]) -> float:
  finite = [v for v in values if not math.isnan(v)]
  return float(np.mean(finite)) if finite else math.nan
