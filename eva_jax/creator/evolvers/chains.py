"""Chained evolution: each parent is rewritten `num_evolutions` times, child i the parent of child i+1.

All chains advance together, one batched `rewrite` call per step (so an LLM backend sees every
request of a step at once). A candidate the rewrite step cannot produce, or the filter rejects,
is counted and dropped; its chain continues from its last accepted prompt, so a failed step costs
one rewrite, not the rest of the chain. Accepted children get ids `g{generation}-{i}` in creation
order and enter the filter's memory at once, so later steps cannot recreate them.

`ChainEvolver` turns a rewrite step into an `Evolver`.
"""

import collections
from collections.abc import Sequence
import dataclasses

import numpy as np

from eva_jax.creator import records as records_lib
from eva_jax.creator.evolvers import protocol


def _partners(n: int, rng: np.random.Generator) -> np.ndarray:
  """For each chain, another chain chosen uniformly (-1 when there is no other)."""
  if n < 2:
    return np.full(n, -1)
  return (np.arange(n) + rng.integers(1, n, size=n)) % n


def evolve_in_chains(
  parents: Sequence[records_lib.PromptRecord],
  *,
  generation: int,
  num_evolutions: int,
  methods: protocol.MethodDistribution,
  rewrite: protocol.RewriteStep,
  rng: np.random.Generator,
  accept: protocol.Accept | None = None,
) -> protocol.Evolution:
  if num_evolutions < 1:
    raise ValueError(f"num_evolutions must be >= 1, got {num_evolutions}")
  frontier = list(parents)
  children: list[records_lib.PromptRecord] = []
  drops: collections.Counter = collections.Counter()
  requests = retries = 0
  for _ in range(num_evolutions if frontier else 0):
    drawn = methods.draw(len(frontier), rng)
    partners = _partners(len(frontier), rng)
    batch = [
      protocol.Request(f.text, m, frontier[p].text if p >= 0 else None)
      for f, m, p in zip(frontier, drawn, partners)
    ]
    outputs = rewrite(batch, rng)
    if len(outputs) != len(batch):
      raise RuntimeError(f"rewrite step returned {len(outputs)} results for {len(batch)} requests")
    requests += len(batch)
    retries += sum(out.retries for out in outputs)
    made = [i for i, out in enumerate(outputs) if out.text is not None]
    drops.update(out.reason for out in outputs if out.text is None)
    verdicts = accept([outputs[i].text for i in made]) if accept is not None else [None] * len(made)
    for i, verdict in zip(made, verdicts):
      if verdict is not None:
        continue
      parent = frontier[i]
      child = records_lib.PromptRecord(
        prompt_id=records_lib.prompt_id(generation, len(children)),
        text=outputs[i].text,
        parent_id=parent.prompt_id,
        root_id=parent.root_id,
        generation=generation,
        method=batch[i].method,
        source="evolved",
      )
      children.append(child)
      frontier[i] = child
  return protocol.Evolution(children=children, requests=requests, drops=drops, retries=retries)


@dataclasses.dataclass(frozen=True)
class ChainEvolver:
  """An `Evolver` made of a batched rewrite step, a method distribution and a chain length."""

  rewrite: protocol.RewriteStep
  methods: protocol.MethodDistribution
  num_evolutions: int = 4

  def evolve(
    self,
    parents: Sequence[records_lib.PromptRecord],
    *,
    generation: int,
    rng: np.random.Generator,
    accept: protocol.Accept | None = None,
  ) -> protocol.Evolution:
    return evolve_in_chains(
      parents,
      generation=generation,
      num_evolutions=self.num_evolutions,
      methods=self.methods,
      rewrite=self.rewrite,
      rng=rng,
      accept=accept,
    )
