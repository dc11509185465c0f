"""One creator step, pool_t + this round's rewards -> pool_{t+1}, and the seed generation.

`next_generation` updates each prompt's reward statistics and informativeness, normalises the
scores over the pool, selects prompts to evolve, evolves them in chains (every candidate filtered
against the whole pool), and returns the new generation: the old prompts (with their new
statistics) followed by the accepted children. With `max_size`, the least informative scored old
prompts are dropped first to make room (never prompts not yet scored); when the children alone
exceed `max_size` (a large `sample_frac` x `num_evolutions`), a random subset of them fills it with
the unscored old prompts, so `max_size` bounds every generation and the next round's sampling.

Counts of what happened go into `stats` (for metrics) and the log:
  creator/pool_size, creator/scored, creator/selected, creator/requests, creator/children,
  creator/capped (old prompts dropped), creator/capped_children, creator/drop/<reason> (evolver), creator/filter/<reason> (filters),
  creator/retries (the HTTP evolver's client retries; absent when none), creator/info_mean, creator/info_selected_mean, creator/seconds.
"""

import collections
from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import time

from absl import logging
import numpy as np

from eva_jax.creator import config as creator_config
from eva_jax.creator import filters
from eva_jax.creator import informativeness
from eva_jax.creator import records as records_lib
from eva_jax.creator import seeds
from eva_jax.creator import selection
from eva_jax.creator.evolvers import protocol


@dataclasses.dataclass(frozen=True)
class Generation:
  records: list[records_lib.PromptRecord]  # the whole new pool generation
  children: list[records_lib.PromptRecord]  # prompts created in it (also at the end of `records`)
  selected: list[str]  # ids of the prompts that were evolved
  stats: dict[str, float]


def cap_pool(records: Sequence[records_lib.PromptRecord], room: int) -> list[records_lib.PromptRecord]:
  """At most `room` records, dropping the scored ones with the lowest info first (oldest first on ties)."""
  excess = len(records) - max(room, 0)
  if excess <= 0:
    return list(records)
  info = records_lib.info_scores(records)
  scored = np.flatnonzero(np.isfinite(info))
  order = scored[np.lexsort((np.array([r.generation for r in records])[scored], info[scored]))]
  drop = set(order[:excess].tolist())
  return [r for i, r in enumerate(records) if i not in drop]


def cap_children(
  children: Sequence[records_lib.PromptRecord], max_size: int, rng: np.random.Generator
) -> list[records_lib.PromptRecord]:
  """At most `max_size` (0 = all) of `children`, a random subset in their original order."""
  if not max_size or len(children) <= max_size:
    return list(children)
  keep = np.sort(rng.choice(len(children), max_size, replace=False))
  return [children[i] for i in keep]


def _log(kind: str, stats: dict[str, float]) -> None:
  logging.info(
    "creator %s: %s", kind, ", ".join(f"{k.removeprefix('creator/')}={v:g}" for k, v in stats.items())
  )


def next_generation(
  records: Sequence[records_lib.PromptRecord],
  rewards: np.ndarray | None,
  mask: np.ndarray | None,
  *,
  config: creator_config.CreatorConfig,
  evolver: protocol.Evolver,
  generation: int,
  rng: np.random.Generator,
  count_tokens: Callable[[str], int] | None = None,
  max_size: int = 0,
) -> Generation:
  """See the module docstring. `rewards` is `[len(records), n]` (NaN = dropped) or None to reuse stats."""
  start = time.perf_counter()
  if rewards is not None:
    records = records_lib.with_stats(records, rewards, mask, config.info_metric)
  info = records_lib.info_scores(records)
  weights = informativeness.normalise(info)
  scored = int(np.isfinite(weights).sum())
  chosen = selection.select(
    weights, selection.num_selected(scored, config.sample_frac), config.selection, rng
  )
  prompt_filter = filters.PromptFilter(config.filters, (r.text for r in records), count_tokens)
  evolution = evolver.evolve(
    [records[i] for i in chosen], generation=generation, rng=rng, accept=prompt_filter.check
  )
  unscored = len(records) - scored  # never dropped: they have not been sampled yet
  children = cap_children(evolution.children, max(max_size - unscored, 1) if max_size else 0, rng)
  kept = cap_pool(records, max_size - len(children)) if max_size else list(records)
  stats = {
    "creator/pool_size": len(kept) + len(children),
    "creator/scored": scored,
    "creator/selected": len(chosen),
    "creator/requests": evolution.requests,
    "creator/children": len(children),
    "creator/yield": len(evolution.children) / evolution.requests if evolution.requests else float("nan"),
    **{f"creator/method/{m}": c for m, c in sorted(collections.Counter(r.method for r in children).items())},
    "creator/capped": len(records) - len(kept),
    "creator/capped_children": len(evolution.children) - len(children),
    **{f"creator/drop/{k}": v for k, v in sorted(evolution.drops.items())},
    **({"creator/retries": evolution.retries} if evolution.retries else {}),  # only HTTP evolvers retry
    **{f"creator/filter/{k}": v for k, v in sorted(prompt_filter.counts.items())},
    "creator/info_mean": float(np.nanmean(info)) if scored else float("nan"),
    "creator/info_selected_mean": float(np.mean(info[chosen])) if len(chosen) else float("nan"),
    "creator/seconds": time.perf_counter() - start,
  }
  _log(f"generation {generation}", stats)
  return Generation(kept + children, children, [records[i].prompt_id for i in chosen], stats)


def initial_generation(
  pool_config: creator_config.PoolConfig,
  config: creator_config.CreatorConfig,
  *,
  seed: int,
  count_tokens: Callable[[str], int] | None = None,
  sample_limit: seeds.PromptLimit | None = None,
) -> Generation:
  """Generation 0: the configured seed prompts, filtered (dedup, empty, ...), as seed records.

  With `sample_limit`, seeds the sampler cannot take are refused first (`seeds.refuse_unfit`, by
  `pool.on_malformed`: listed and skipped, or the load fails).
  """
  start = time.perf_counter()
  loaded = seeds.load_seeds(pool_config, task=config.task, seed=seed)
  too_long = 0
  if sample_limit is not None:
    loaded, too_long = seeds.refuse_unfit(loaded, sample_limit, pool_config.on_malformed)
  prompt_filter = filters.PromptFilter(config.filters, (), count_tokens)
  reasons = prompt_filter.check(loaded.prompts)
  rows = zip(loaded.line_numbers(), loaded.prompts, reasons)
  dropped = [(line, f"{reason} {text[:60]!r}") for line, text, reason in rows if reason is not None]
  # Listed by line like malformed ones (always skipped: the filters are what the user asked for).
  seeds.report_lines(loaded.source, dropped, "skip", "filtered")
  seed_records = records_lib.seed_records([t for t, r in zip(loaded.prompts, reasons) if r is None])
  stats = {
    "creator/pool_size": len(seed_records),
    "creator/seeds_loaded": len(loaded.prompts),
    "creator/seeds_malformed": len(loaded.malformed) - too_long,
    "creator/seeds_too_long": too_long,
    **{f"creator/filter/{k}": v for k, v in sorted(prompt_filter.counts.items())},
    "creator/seconds": time.perf_counter() - start,
  }
  if not seed_records:
    raise ValueError(f"no usable seed prompts in {loaded.source} ({stats})")
  _log("seeds", stats)
  return Generation(seed_records, seed_records, [], stats)
