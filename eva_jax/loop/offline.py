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


# The arms whose round writes a new pool generation: loop.prompts -> its creator step.
MAKE_GENERATION = {"evolve": _evolved, "fresh": _fresh}


def _informative_subset(ctx: RoundContext, records, scored, rng: np.random.Generator) -> np.ndarray:
  """The "informative subset, no evolving" ablation: the prompts the creator would have evolved."""
  updated = records_lib.with_stats(records, scored.rewards, None, ctx.cfg.creator.info_metric)
  weights = informativeness.normalise(records_lib.info_scores(updated))
  k = selection.num_selected(int(np.isfinite(weights).sum()), ctx.cfg.creator.sample_frac)
  return selection.select(weights, k, ctx.cfg.creator.selection, rng)


def _pair_ids(scored: responses_lib.ScoredResponses, pairs: pairs_lib.Pairs):
  return (
    [scored.prompt_ids[p] for p in pairs.prompt],
    [scored.response_ids[p][c] for p, c in zip(pairs.prompt, pairs.chosen)],
    [scored.response_ids[p][r] for p, r in zip(pairs.prompt, pairs.rejected)],
  )


def run_round(ctx: RoundContext, params, round_index: int, generation: int):
  """Runs round `round_index` from pool generation `generation`; returns (params, next generation, stats)."""
  start = time.perf_counter()
  seed = ctx.cfg.seed
  key = jax.random.fold_in(jax.random.key(seed), round_index)
  # Separate streams: a resumed round that reads its pool generation back (no creator draws) must
  # still mix the same pairs.
  creator_rng, mix_rng = (np.random.default_rng([seed, round_index, stream]) for stream in (0, 1))
  times = metrics_lib.PhaseTimes()
  with times("pool_io"):
    records = ctx.pool.read_generation(generation)
  old = _score(ctx, params, records, jax.random.fold_in(key, 0), times)
  where = f"round {round_index} (redone on resume)"
  ctx.stop.check(where)
  stats = {
    "round/pool_size": len(records),
    "round/reward_mean": float(np.nanmean(old.rewards)),
    "round/reward_max": float(np.nanmax(old.rewards)),
    "round/reward_min": float(np.nanmin(old.rewards)),
    "round/zero_variance_prompts": float(np.mean(np.nanmax(old.rewards, 1) == np.nanmin(old.rewards, 1))),
    "round/dropped_responses": old.num_dropped,
  }
  old_pairs = pairs_lib.best_vs_worst(old.rewards, ctx.loop.min_gap, ctx.loop.min_chosen_reward)
  if ctx.loop.rehearse:
    rehearsed = pairs_lib.rehearsal(old.rewards, ctx.loop.min_chosen_reward)
    old_pairs = pairs_lib.concat(old_pairs, rehearsed)
    stats["round/rehearsal_pairs"] = len(rehearsed)
  prompt_ids, chosen_ids, rejected_ids = _pair_ids(old, old_pairs)
  next_generation = generation
  if ctx.loop.prompts == "subset":
    chosen = set(_informative_subset(ctx, records, old, creator_rng).tolist())
    old_pairs = old_pairs.take(np.array([i for i, p in enumerate(old_pairs.prompt) if p in chosen], int))
    prompt_ids, chosen_ids, rejected_ids = _pair_ids(old, old_pairs)
    stats["round/subset_prompts"] = len(chosen)
  elif ctx.loop.prompts in ("evolve", "fresh"):
    next_generation = generation + 1
    make = MAKE_GENERATION[ctx.loop.prompts]
    committed = ctx.pool.commit(
      next_generation, lambda: make(ctx, records, old, next_generation, creator_rng), times
    )
    children = committed.new(next_generation)
    creator_stats = committed.stats | ({"creator/reused": 1.0} if committed.reused else {})
    stats |= creator_stats
    if children:
      ctx.stop.check(where)
      new = _score(ctx, params, children, jax.random.fold_in(key, 1), times)
      with times("pool_io"):  # the pool keeps the new prompts' first scores with their generation
        ctx.pool.write_scores(
          next_generation, records_lib.with_stats(children, new.rewards, None, ctx.cfg.creator.info_metric)
        )
      ctx.stop.check(where)
      new_pairs = pairs_lib.best_vs_worst(new.rewards, ctx.loop.min_gap, ctx.loop.min_chosen_reward)
      new_idx, old_idx = pairs_lib.mix(len(new_pairs), len(old_pairs), ctx.loop.old_fraction, mix_rng)
      n_p, n_c, n_r = _pair_ids(new, new_pairs.take(new_idx))
      o_p, o_c, o_r = _pair_ids(old, old_pairs.take(old_idx))
      prompt_ids, chosen_ids, rejected_ids = n_p + o_p, n_c + o_c, n_r + o_r
      stats |= {
        "round/new_prompt_reward_mean": float(np.nanmean(new.rewards)),
        "round/new_pairs": len(new_pairs),
        # Evolution yield in the creator's own terms: children with a reward spread to learn from.
        "round/new_prompts_informative": float(
          np.mean(np.nanmax(new.rewards, 1) > np.nanmin(new.rewards, 1))
        ),
      }
  if ctx.loop.max_train_pairs and len(prompt_ids) > ctx.loop.max_train_pairs:
    keep = np.sort(mix_rng.choice(len(prompt_ids), ctx.loop.max_train_pairs, replace=False))
    prompt_ids, chosen_ids, rejected_ids = (
      [x[i] for i in keep] for x in (prompt_ids, chosen_ids, rejected_ids)
    )
  stats["round/old_pairs"] = len(old_pairs)
  stats["round/train_pairs"] = len(prompt_ids)
  stats["round/train_steps"] = 0  # optimizer steps this round
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
  return params, next_generation, stats
