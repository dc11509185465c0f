"""One offline eva round (the paper's main setting).

    pool_t -> sample n responses per prompt -> rewards -> informativeness -> select -> evolve
      -> filter -> pool_{t+1} -> sample + score the new prompts -> best-vs-worst pairs
      -> mix (old_fraction old / rest new) -> reference log-probs -> DPO-family epochs

`loop.prompts` switches the paper's baselines without forking the code: "evolve" (eva), "static"
(creator off: the pool never changes), "subset" (train only on the informative prompts the creator
would evolve; no evolving) and "fresh" (as many new seed-distribution prompts as eva would evolve:
the "new human prompts" baseline). The reference is the params the round starts from. Every random choice comes from (seed, round),
so a round redone after a crash makes the same pool generation and pairs; a pool generation that
was already committed before the crash is read back instead of written again.
"""

from collections.abc import Callable
import dataclasses
import functools
import math
import time

from absl import logging
import flax.linen as nn
from gemma import gm
import jax
import numpy as np

from eva_jax import tasks
from eva_jax.creator import filters
from eva_jax.creator import generation as generation_lib
from eva_jax.creator import informativeness
from eva_jax.creator import pool as pool_lib
from eva_jax.creator import records as records_lib
from eva_jax.creator import selection
from eva_jax.creator.evolvers import protocol as evolver_protocol
from eva_jax.loop import config as loop_config
from eva_jax.loop import metrics as metrics_lib
from eva_jax.loop import pairs as pairs_lib
from eva_jax.loop import preemption
from eva_jax.loop import responses as responses_lib
from eva_jax.loop import training
from eva_jax.rewards import base as reward_base
from eva_jax.sampling import sampler


@dataclasses.dataclass(frozen=True)
class RoundContext:
  """Everything a round (or an online step) needs that does not change between rounds."""

  cfg: object  # eva_jax.config.RunConfig (a layer above the loop: typed by name only)
  model: nn.Module  # a gemma library Transformer (Gemma 2, 3 or 4)
  tokenizer: gm.text.Tokenizer
  mesh: jax.sharding.Mesh
  param_shardings: object  # pytree of jax.sharding.NamedSharding, the params' layout
  reward_source: reward_base.RewardSource
  evolver: evolver_protocol.Evolver
  pool: pool_lib.Pool
  on_metrics: Callable[[int, dict], object]  # (step, metrics) for every training step
  stop: preemption.Preemption = dataclasses.field(default_factory=preemption.Preemption)  # SIGTERM flag

  @property
  def loop(self) -> loop_config.LoopConfig:
    return self.cfg.loop

  def count_tokens(self, text: str) -> int:
    """Tokens of `text` (what the creator's length filter counts)."""
    return len(self.tokenizer.encode(text))


def sampling_config(loop) -> sampler.SamplingConfig:
  return sampler.SamplingConfig(
    num_samples=loop.num_samples,
    max_new_tokens=loop.max_new_tokens,
    temperature=loop.temperature,
    top_p=loop.top_p,
    batch_size=loop.sample_batch_size,
    max_cache_length=loop.max_cache_length,
  )


def _score(
  ctx: RoundContext, params, records, rng, times: metrics_lib.PhaseTimes
) -> responses_lib.ScoredResponses:
  scored = responses_lib.sample_and_score(
    ctx.model,
    params,
    ctx.tokenizer,
    [r.text for r in records],
    sampling_config(ctx.loop),
    rng,
    ctx.reward_source,
    ctx.cfg.reward.nonfinite,
    prompt_keys=[r.prompt_id for r in records],
    mesh=ctx.mesh,
  )
  times.seconds["sample"] += scored.sample_seconds
  times.seconds["score"] += scored.score_seconds
  times.seconds["sampled_tokens"] += scored.tokens_sampled
  return scored


def evolved_generation(ctx: RoundContext, records, rewards, generation: int, rng: np.random.Generator):
  """eva's creator step: (records, stats) of pool generation `generation`.

  `rewards` [len(records), n] are this round's (None online: the records carry their stats).
  """
  gen = generation_lib.next_generation(
    records,
    rewards,
    None,
    config=ctx.cfg.creator,
    evolver=ctx.evolver,
    generation=generation,
    rng=rng,
    count_tokens=ctx.count_tokens,
    max_size=ctx.cfg.pool.max_size,
  )
  return gen.records, gen.stats


def _evolved(ctx: RoundContext, records, scored, generation: int, rng: np.random.Generator):
  return evolved_generation(ctx, records, scored.rewards, generation, rng)


def _fresh(ctx: RoundContext, records, scored, generation: int, rng: np.random.Generator):
  """The "new human prompts" baseline: as many fresh seed-distribution prompts as eva would evolve."""
  updated = records_lib.with_stats(records, scored.rewards, None, ctx.cfg.creator.info_metric)
  scored_count = int(np.isfinite(records_lib.info_scores(updated)).sum())
  wanted = selection.num_selected(scored_count, ctx.cfg.creator.sample_frac) * ctx.cfg.creator.num_evolutions
  if ctx.cfg.pool.max_size:  # eva's children are capped the same way (generation.cap_children)
    wanted = min(wanted, ctx.cfg.pool.max_size)
  keep = filters.PromptFilter(ctx.cfg.creator.filters, (r.text for r in records), ctx.count_tokens)
  candidates = tasks.get_task(ctx.cfg.creator.task).seed_prompts(4 * wanted, int(rng.integers(2**31)))
  fresh = keep.keep(candidates)[:wanted]
  children = [
    records_lib.PromptRecord(
      records_lib.prompt_id(generation, i),
      text,
      "",
      records_lib.prompt_id(generation, i),
      generation,
      "fresh",
      "seed",
    )
    for i, text in enumerate(fresh)
  ]
  # The same `pool.max_size` as eva's generations, so this arm samples a pool of the same size.
  max_size = ctx.cfg.pool.max_size
  kept = generation_lib.cap_pool(updated, max_size - len(children)) if max_size else updated
  stats = {
    "creator/children": len(children),
    "creator/pool_size": len(kept) + len(children),
    "creator/capped": len(updated) - len(kept),
  }
  return kept + children, stats


@dataclasses.dataclass(frozen=True)
class Scored:
  """A round's pool generation as the arms see it: scored, with its best-vs-worst pairs."""

  round_index: int
  generation: int
  records: list  # [PromptRecord] of pool generation `generation`
  responses: responses_lib.ScoredResponses  # n responses per record, with rewards
  pairs: pairs_lib.Pairs  # best-vs-worst (plus rehearsal) pairs over `responses`


@dataclasses.dataclass(frozen=True)
class Streams:
  """The round's random streams: creator draws apart from the pair mix, so a resumed round that reads
  its pool generation back (no creator draws) still mixes the same pairs."""

  key: jax.Array  # sampling key of the round
  creator: np.random.Generator
  mix: np.random.Generator


@dataclasses.dataclass(frozen=True)
class ArmResult:
  """What an arm hands the solver: the pairs to train on, by id, and where the pool goes next."""

  prompt_ids: list[str]
  chosen_ids: list[str]
  rejected_ids: list[str]
  next_generation: int
  old_pairs: int  # pairs from the round's own pool generation that the arm kept
  stats: dict


def _pair_ids(scored: responses_lib.ScoredResponses, pairs: pairs_lib.Pairs):
  return (
    [scored.prompt_ids[p] for p in pairs.prompt],
    [scored.response_ids[p][c] for p, c in zip(pairs.prompt, pairs.chosen)],
    [scored.response_ids[p][r] for p, r in zip(pairs.prompt, pairs.rejected)],
  )


def _static(ctx: RoundContext, params, pool: Scored, streams: Streams, times) -> ArmResult:
  """Creator off: train on the pool generation's own pairs; the pool never changes."""
  return ArmResult(*_pair_ids(pool.responses, pool.pairs), pool.generation, len(pool.pairs), {})


def _subset(ctx: RoundContext, params, pool: Scored, streams: Streams, times) -> ArmResult:
  """The "informative subset, no evolving" ablation: the pairs of the prompts the creator would evolve."""
  updated = records_lib.with_stats(pool.records, pool.responses.rewards, None, ctx.cfg.creator.info_metric)
  weights = informativeness.normalise(records_lib.info_scores(updated))
  k = selection.num_selected(int(np.isfinite(weights).sum()), ctx.cfg.creator.sample_frac)
  chosen = set(selection.select(weights, k, ctx.cfg.creator.selection, streams.creator).tolist())
  kept = pool.pairs.take(np.array([i for i, p in enumerate(pool.pairs.prompt) if p in chosen], int))
  ids = _pair_ids(pool.responses, kept)
  return ArmResult(*ids, pool.generation, len(kept), {"round/subset_prompts": len(chosen)})


def _evolving(make, ctx: RoundContext, params, pool: Scored, streams: Streams, times) -> ArmResult:
  """Write pool generation t+1 with `make` (or read it back), score its new prompts, mix the pairs."""
  generation = pool.generation + 1
  committed = ctx.pool.commit(
    generation, lambda: make(ctx, pool.records, pool.responses, generation, streams.creator), times
  )
  children = committed.new(generation)
  stats = committed.stats | ({"creator/reused": 1.0} if committed.reused else {})
  ids = _pair_ids(pool.responses, pool.pairs)
  if children:
    where = f"round {pool.round_index} (redone on resume)"
    ctx.stop.check(where)
    new = _score(ctx, params, children, jax.random.fold_in(streams.key, 1), times)
    with times("pool_io"):  # the pool keeps the new prompts' first scores with their generation
      ctx.pool.write_scores(
        generation, records_lib.with_stats(children, new.rewards, None, ctx.cfg.creator.info_metric)
      )
    ctx.stop.check(where)
    new_pairs = pairs_lib.best_vs_worst(new.rewards, ctx.loop.min_gap, ctx.loop.min_chosen_reward)
    new_idx, old_idx = pairs_lib.mix(len(new_pairs), len(pool.pairs), ctx.loop.old_fraction, streams.mix)
    ids = tuple(
      a + b
      for a, b in zip(
        _pair_ids(new, new_pairs.take(new_idx)), _pair_ids(pool.responses, pool.pairs.take(old_idx))
      )
    )
    stats |= {
      "round/new_prompt_reward_mean": float(np.nanmean(new.rewards)),
      "round/new_pairs": len(new_pairs),
      # Evolution yield in the creator's own terms: children with a reward spread to learn from.
      "round/new_prompts_informative": float(np.mean(np.nanmax(new.rewards, 1) > np.nanmin(new.rewards, 1))),
    }
  return ArmResult(*ids, generation, len(pool.pairs), stats)


# loop.prompts -> the arm: what the round trains on and whether it writes a pool generation.
ARMS = {
  "evolve": functools.partial(_evolving, _evolved),
  "fresh": functools.partial(_evolving, _fresh),
  "static": _static,
  "subset": _subset,
}


def _pool_stats(rewards: np.ndarray) -> dict:
  return {
    "round/pool_size": len(rewards),
    "round/reward_mean": float(np.nanmean(rewards)),
    "round/reward_max": float(np.nanmax(rewards)),
    "round/reward_min": float(np.nanmin(rewards)),
    "round/zero_variance_prompts": float(np.mean(np.nanmax(rewards, 1) == np.nanmin(rewards, 1))),
  }


def _capped(arm: ArmResult, max_pairs: int, rng: np.random.Generator):
  """The arm's pair ids, at most `max_pairs` of them (a uniform draw keeping their order)."""
  ids = (arm.prompt_ids, arm.chosen_ids, arm.rejected_ids)
  if not max_pairs or len(arm.prompt_ids) <= max_pairs:
    return ids
  keep = np.sort(rng.choice(len(arm.prompt_ids), max_pairs, replace=False))
  return tuple([x[i] for i in keep] for x in ids)


def run_round(ctx: RoundContext, params, round_index: int, generation: int):
  """Runs round `round_index` from pool generation `generation`; returns (params, next generation, stats)."""
  start = time.perf_counter()
  seed = ctx.cfg.seed
  streams = Streams(
    jax.random.fold_in(jax.random.key(seed), round_index),
    *(np.random.default_rng([seed, round_index, stream]) for stream in (0, 1)),
  )
  times = metrics_lib.PhaseTimes()
  # 1. Sample n responses for every prompt of pool_t and score them.
  with times("pool_io"):
    records = ctx.pool.read_generation(generation)
  old = _score(ctx, params, records, jax.random.fold_in(streams.key, 0), times)
  ctx.stop.check(f"round {round_index} (redone on resume)")
  stats = _pool_stats(old.rewards) | {"round/dropped_responses": old.num_dropped}
  # 2. Best-vs-worst pairs (and the rehearsal pairs of mastered prompts).
  pairs = pairs_lib.best_vs_worst(old.rewards, ctx.loop.min_gap, ctx.loop.min_chosen_reward)
  if ctx.loop.rehearse:
    rehearsed = pairs_lib.rehearsal(old.rewards, ctx.loop.min_chosen_reward)
    pairs = pairs_lib.concat(pairs, rehearsed)
    stats["round/rehearsal_pairs"] = len(rehearsed)
  # 3. The arm: eva selects informative prompts, evolves them into pool_{t+1}, scores and mixes.
  arm = ARMS[ctx.loop.prompts](
    ctx, params, Scored(round_index, generation, records, old, pairs), streams, times
  )
  stats |= arm.stats
  prompt_ids, chosen_ids, rejected_ids = _capped(arm, ctx.loop.max_train_pairs, streams.mix)
  stats["round/old_pairs"] = arm.old_pairs
  stats["round/train_pairs"] = len(prompt_ids)
  stats["round/train_steps"] = 0  # optimizer steps this round
  # 4. Preference epochs against the reference (the params the round starts from).
  if not prompt_ids:
    logging.warning("round %d: no prompt has any reward spread; no training this round", round_index)
  else:
    with times("train"):
      params, metrics = training.preference_epochs(
        ctx.model,
        params,
        prompt_ids,
        chosen_ids,
        rejected_ids,
        solver=ctx.cfg.solver,
        mesh=ctx.mesh,
        param_shardings=ctx.param_shardings,
        seed=seed * 1000 + round_index,
        chunk_size=ctx.cfg.model.logprob_chunk,
        on_metrics=ctx.on_metrics,
        phase=f"round {round_index}: {ctx.cfg.solver.loss} epochs",
      )
    stats |= {f"train/{k}": v for k, v in metrics.items()}
    stats["round/train_steps"] = ctx.cfg.solver.epochs * math.ceil(
      len(prompt_ids) / ctx.cfg.solver.batch_size
    )
  tokens = times.seconds.pop("sampled_tokens")
  stats["round/sampled_tokens"] = tokens
  stats |= times.stats()
  stats["round/sampler_tokens_per_s"] = tokens / max(times.seconds["sample"], 1e-9)
  stats["round/seconds"] = time.perf_counter() - start
  return params, arm.next_generation, stats
