"""What an evolver is: parent prompts in, child prompts out (with parent id, method and generation).

Both evolvers (task operators, LLM rewriting) are a `rewrite` step plugged into one chain driver,
`chains.evolve_in_chains`; this module holds the types they share and the method distribution.
"""

import collections
from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
from typing import Protocol

import numpy as np

from eva_jax.creator import records as records_lib

# Given candidate child texts, None for each one kept, else the reason it was dropped.
Accept = Callable[[Sequence[str]], list[str | None]]


@dataclasses.dataclass(frozen=True)
class Request:
  """One rewrite: the chain's current prompt, the method drawn for it and, for methods that
  combine two prompts, another chain's current prompt (None when there is no other chain)."""

  text: str
  method: str
  partner: str | None = None


@dataclasses.dataclass(frozen=True)
class Rewrite:
  text: str | None  # the candidate child, or None
  reason: str = ""  # why there is no candidate (e.g. "refusal", "timeout", "not_applicable")
  retries: int = 0  # extra attempts the backend made for it (HTTP retries)


@dataclasses.dataclass(frozen=True)
class Evolution:
  children: list[records_lib.PromptRecord]  # accepted children, in creation order
  requests: int  # rewrites asked for
  drops: collections.Counter  # rewrites with no usable output, by reason (filter drops not included)
  retries: int = 0  # extra backend attempts over all rewrites (the HTTP client's retries)


# One chain step for a batch of requests: returns one Rewrite per request, in order.
RewriteStep = Callable[[Sequence[Request], np.random.Generator], list[Rewrite]]


class Evolver(Protocol):
  def evolve(
    self,
    parents: Sequence[records_lib.PromptRecord],
    *,
    generation: int,
    rng: np.random.Generator,
    accept: Accept | None = None,
  ) -> Evolution:
    """Children of `parents` for pool generation `generation`; `accept` filters candidates."""
    ...


@dataclasses.dataclass(frozen=True)
class MethodDistribution:
  """Which method each rewrite uses: drawn independently per chain step."""

  names: tuple[str, ...]
  probs: tuple[float, ...]

  @classmethod
  def create(cls, weights: Sequence[tuple[str, float]], available: Sequence[str]) -> "MethodDistribution":
    """From (method, weight) pairs; no pairs = uniform over `available`."""
    pairs = list(weights) or [(name, 1.0) for name in available]
    unknown = [name for name, _ in pairs if name not in available]
    if unknown:
      raise ValueError(f"unknown methods {unknown}; expected some of {list(available)}")
    total = sum(w for _, w in pairs)
    if total <= 0 or any(w < 0 for _, w in pairs):
      raise ValueError(f"method weights must be >= 0 with a positive sum, got {pairs}")
    return cls(tuple(n for n, _ in pairs), tuple(w / total for _, w in pairs))

  def draw(self, size: int, rng: np.random.Generator) -> list[str]:
    return [self.names[i] for i in rng.choice(len(self.names), size=size, p=self.probs)]
