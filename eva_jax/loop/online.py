"""Online eva with RLOO: every step draws prompts from the pool, samples k responses each, scores
them and takes an RLOO step; the creator evolves the pool every `creator_every_steps` steps.

Drawing (`loop.draw`): "weighted" by the latest normalised informativeness (never-scored prompts get
the top weight, so new prompts are tried first), "uniform", or "dapo": weighted, but groups whose k
rewards are all equal carry no RLOO signal and are replaced by fresh draws (up to `dapo_tries`
extra draws). A group with a dropped (non-finite) reward is masked out of the step. Each step's
per-prompt rewards update that prompt's statistics and informativeness for free.
"""

import dataclasses
import functools
import time

from absl import logging
import jax
import numpy as np

from eva_jax.creator import informativeness
from eva_jax.creator import records as records_lib
from eva_jax.loop import offline
from eva_jax.loop import online_state
from eva_jax.loop import responses as responses_lib
from eva_jax.models import batching
from eva_jax.solver import nonfinite
from eva_jax.solver import optim
from eva_jax.solver import steps
from eva_jax.solver import train_state

DAPO_TRIES = 3  # extra draws per step to replace zero-variance groups


def draw_weights(records, draw: str) -> np.ndarray:
  """Sampling probabilities over the pool for one step's prompts."""
  if draw == "uniform":
    return np.full(len(records), 1.0 / len(records))
  weights = informativeness.normalise(records_lib.info_scores(records))
  weights = np.where(np.isfinite(weights), weights, 1.0) + 1e-3  # unscored first; nobody at zero
  return weights / weights.sum()


def _draw(records, count: int, draw: str, rng: np.random.Generator, exclude=()) -> np.ndarray:
  p = draw_weights(records, draw)
  if len(exclude):
    p[list(exclude)] = 0.0
    p = p / p.sum()
  return rng.choice(len(records), size=min(count, int((p > 0).sum())), replace=False, p=p)


def _varied(scored: responses_lib.ScoredResponses) -> np.ndarray:
  """[P] bool: the groups whose rewards are not all equal (the ones RLOO learns from)."""
  return np.nanmax(scored.rewards, 1) > np.nanmin(scored.rewards, 1)


def refilled(scored, idx: np.ndarray, varied: np.ndarray, extra, slots: np.ndarray, refill: np.ndarray):
  """DAPO's dynamic sampling: zero-variance groups in `slots` replaced by the varied groups of `extra`.

  `extra` holds the groups of pool rows `refill`, drawn for `slots` in order; a slot keeps its group
  when its replacement has no spread either. Returns new (scored, idx, varied); nothing is mutated.
  """
  rows = ("prompts", "prompt_ids", "response_ids", "texts", "logprobs")
  lists = {name: list(getattr(scored, name)) for name in rows}
  rewards, idx, varied = scored.rewards.copy(), idx.copy(), varied.copy()
  extra_varied = _varied(extra)
  for slot, j in zip(slots, range(len(refill))):
    if extra_varied[j]:
      idx[slot] = refill[j]
      for name in rows:
        lists[name][slot] = getattr(extra, name)[j]
      rewards[slot] = extra.rewards[j]
      varied[slot] = True
  return dataclasses.replace(scored, rewards=rewards, **lists), idx, varied


def _sequence_batch(scored: responses_lib.ScoredResponses, keep_groups: np.ndarray, rows: int, k: int):
  prompt_ids, response_ids, behaviour, rewards = [], [], [], []
  for g in range(len(scored.prompts)):
    for j in range(k):
      prompt_ids.append(scored.prompt_ids[g])
      response_ids.append(scored.response_ids[g][j])
      behaviour.append(scored.logprobs[g][j])
      rewards.append(scored.rewards[g, j] if keep_groups[g] else 0.0)
  tb = batching.layout(prompt_ids, response_ids, length_multiple=16, row_multiple=rows)
  lp = np.zeros(tb.tokens.shape, np.float32)
  for row, values in enumerate(behaviour):
    lp[row, tb.score_start : tb.score_start + len(values)] = values
  batch = steps.sequence_batch(tb, rewards=np.asarray(rewards, np.float32), behaviour_logprobs=lp)
  row_mask = batch.row_mask & np.repeat(np.pad(keep_groups, (0, rows // k - len(keep_groups))), k)
  return batch.replace(row_mask=row_mask)


def _score_step(ctx, params, records, idx, key, k):
  config = offline.sampling_config(ctx.loop)
  config = config.__class__(**{**config.__dict__, "num_samples": k})
  return responses_lib.sample_and_score(
    ctx.model,
    params,
    ctx.tokenizer,
    [records[i].text for i in idx],
    config,
    key,
    ctx.reward_source,
    ctx.cfg.reward.nonfinite,
    prompt_keys=[records[i].prompt_id for i in idx],
    mesh=ctx.mesh,
  )


def run_online(
  ctx, params, *, start_step: int, generation: int, restore=None, on_step=None, stats_restored=None
):
  """RLOO steps `start_step .. loop.steps - 1`; returns (params, generation, last step stats).

  `restore(abstract_state) -> TrainState` resumes a checkpointed state (params, optimizer moments,
  step and the reference) and `stats_restored` the pool's per-prompt scores at that step (`online_state.pool_stats`);
  without them the state starts fresh from `params`, which are also the reference.
  `on_step(step, state, generation, stats, records)` is called after every step.
  """
  cfg, loop = ctx.cfg, ctx.loop
  k, rows = cfg.solver.rloo.k, cfg.solver.batch_size
  num_prompts = rows // k
  total = loop.steps * cfg.solver.updates_per_batch
  optimizer = optim.make_optimizer(cfg.solver.optimizer)
  shardings = train_state.state_shardings(optimizer, ctx.param_shardings, ctx.mesh, with_ref=True)
  if restore is not None:
    state = restore(online_state.abstract_state(shardings, optimizer, params))
  else:
    state = train_state.create_train_state(params, optimizer, shardings, total_steps=total, ref_params=params)
  settings = steps.StepSettings(
    ctx.model,
    cfg.solver.optimizer,
    shardings,
    ctx.mesh,
    num_micro=cfg.solver.micro_batches,
    chunk_size=cfg.model.logprob_chunk,
  )
  rloo_step = steps.make_rloo_step(settings, cfg.solver.rloo)
  records = ctx.pool.read_generation(generation)
  if stats_restored is not None:
    records = online_state.with_pool_stats(records, stats_restored)
  # Counts from the resumed step: a resume after a stop on non-finite steps retries them.
  guard = nonfinite.NonfiniteGuard(cfg.solver.max_nonfinite_steps, "RLOO steps (optimizer updates)")
  stats, sampled_tokens = {}, 0  # tokens sampled by this process's steps (restarts count from 0)
  for step in range(start_step, loop.steps):
    start = time.perf_counter()
    key = jax.random.fold_in(jax.random.key(cfg.seed), step)
    rng = np.random.default_rng([cfg.seed, step])
    idx = _draw(records, num_prompts, loop.draw, rng)
    scored = _score_step(ctx, state.params, records, idx, jax.random.fold_in(key, 0), k)
    varied = _varied(scored)
    sampled_tokens += scored.tokens_sampled
    if loop.draw == "dapo":
      for attempt in range(DAPO_TRIES):
        flat = np.flatnonzero(~varied)
        if not len(flat):
          break
        refill = _draw(records, len(flat), loop.draw, rng, exclude=idx)
        if not len(refill):
          break
        extra = _score_step(ctx, state.params, records, refill, jax.random.fold_in(key, attempt + 1), k)
        sampled_tokens += extra.tokens_sampled
        scored, idx, varied = refilled(scored, idx, varied, extra, flat, refill)
    keep = np.isfinite(scored.rewards).all(axis=1)
    batch = _sequence_batch(scored, keep, rows, k)
    for update in range(cfg.solver.updates_per_batch):
      state, metrics = rloo_step(state, batch, jax.random.fold_in(key, 99))
      guard.check(step * cfg.solver.updates_per_batch + update, jax.device_get(metrics))
    metrics = {f"train/{m}": float(v) for m, v in jax.device_get(metrics).items()}
    update = records_lib.with_stats([records[i] for i in idx], scored.rewards, None, cfg.creator.info_metric)
    for i, record in zip(idx, update):
      records[i] = record
    stats = metrics | {
      "online/zero_variance_groups": float(np.mean(~varied)),
      "online/dropped_groups": float(np.mean(~keep)),
      "online/pool_size": len(records),
      "online/step_seconds": time.perf_counter() - start,
      "online/sampled_tokens": sampled_tokens,
    }
    if loop.prompts == "evolve" and (step + 1) % loop.creator_every_steps == 0:
      generation += 1
      make = functools.partial(offline.evolved_generation, ctx, records, None, generation, rng)
      committed = ctx.pool.commit(generation, make)
      records = committed.records
      if not committed.reused:
        stats |= committed.stats
        logging.info("online step %d: pool generation %d with %d prompts", step, generation, len(records))
    if on_step is not None:
      on_step(step, state, generation, stats, records)
  return state.params, generation, stats
