"""A whole eva run: seed pool, SFT warm start, rounds, evaluation, checkpoints, resume.

`run(cfg, loop_cfg, workdir, flat_config)` is what `python -m eva_jax.main --mode=train` calls. A
workdir that already holds a run resumes it from its last finished round (the pool generation and
params of that round), refusing a config that differs in a pinned field (run_state.PINNED_FIELDS).
"""

import json
import time

from absl import logging
from etils import epath
import flax

from eva_jax import tasks
from eva_jax.creator import generation as generation_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.creator.evolvers import factory as evolver_factory
from eva_jax.loop import metrics as metrics_lib
from eva_jax.loop import offline
from eva_jax.loop import online
from eva_jax.loop import run_state
from eva_jax.loop import task_eval
from eva_jax.loop import training
from eva_jax.models import setup
from eva_jax.rewards import factory as reward_factory


def _warm_start(cfg, loop, solver: setup.SolverModel, writer) -> dict:
  task = tasks.get_task(cfg.creator.task)
  prompts = task.seed_prompts(max(4096, loop.warmstart_batch_size), cfg.seed + 1)
  answers = [task.reference(p) for p in prompts]
  params, metrics = training.sft(
    solver.model,
    solver.params,
    solver.tokenizer,
    prompts,
    answers,
    num_steps=loop.warmstart_steps,
    batch_size=loop.warmstart_batch_size,
    learning_rate=loop.warmstart_learning_rate,
    mesh=solver.mesh,
    param_shardings=solver.shardings,
    seed=cfg.seed,
    chunk_size=cfg.model.logprob_chunk,
    on_metrics=lambda i, m: (
      writer.scalars(i, {f"warmstart/{k}": v for k, v in m.items()}) if i % 20 == 0 else None
    ),
  )
  return params, metrics


def run(cfg, loop, workdir: epath.PathLike, flat_config: dict, *, force: bool = False) -> dict:
  """Runs (or resumes) the eva run in `workdir`; returns the per-round summary."""
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  solver = setup.build(cfg)
  print(f"model {cfg.model.name}: {solver.describe()}")
  writer = metrics_lib.MetricsWriter(workdir)
  checkpoints = run_state.RunCheckpoints(workdir, loop.checkpoint_keep)
  pool = pool_lib.Pool(cfg.pool.dir or workdir / "pool")
  task = tasks.get_task(cfg.creator.task)
  eval_prompts = task.eval_prompts(loop.eval_per_bucket) if loop.eval_per_bucket else []
  summary_path = workdir / "summary.json"
  summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"rounds": []}

  latest = checkpoints.latest()
  if latest is None:
    if pool.latest() is None:
      seeds = generation_lib.initial_generation(
        cfg.pool, cfg.creator, seed=cfg.seed, count_tokens=lambda text: len(solver.tokenizer.encode(text))
      )
      pool.write_generation(0, seeds.records)
    before = task_eval.evaluate(solver, task, eval_prompts, loop) if eval_prompts else {}
    params = solver.params
    if loop.warmstart_steps:
      params, sft_metrics = _warm_start(cfg, loop, solver, writer)
      print(f"warm start: {loop.warmstart_steps} SFT steps, final NLL {sft_metrics['nll']:.3f}")
    after = task_eval.evaluate(solver, task, eval_prompts, loop, params=params) if eval_prompts else {}
    summary = {"rounds": [{"round": 0, "generation": 0, "eval_init": before, "eval": after}]}
    meta = {"round": 0, "generation": 0, "config": run_state.pinned(flat_config)}
    checkpoints.save(0, params, meta)
    summary_path.write_text(json.dumps(summary, indent=1))
  else:
    meta = checkpoints.meta(latest)
    run_state.check_compatible(meta["config"], run_state.pinned(flat_config), force=force)
    params = solver.params
    if not meta.get("step"):  # offline rounds and the warm start store params only
      params, _ = checkpoints.restore(latest, run_state.abstract_like(solver.params))
    print(
      f"resuming {workdir}: round {meta['round']} / step {meta.get('step', 0)} done, pool generation {meta['generation']}"
    )

  evolver = evolver_factory.build_evolver(
    cfg.creator, model=solver.model, params=params, tokenizer=solver.tokenizer, mesh=solver.mesh
  )
  reward_source = reward_factory.make_reward_source(cfg.reward, mesh=solver.mesh, rules=cfg.mesh.rules)
  step_offset = [0]
  ctx = offline.RoundContext(
    cfg=cfg,
    loop=loop,
    model=solver.model,
    tokenizer=solver.tokenizer,
    mesh=solver.mesh,
    param_shardings=solver.shardings,
    reward_source=reward_source,
    evolver=evolver,
    pool=pool,
    on_metrics=lambda i, m: writer.scalars(step_offset[0] + i, {f"train/{k}": v for k, v in m.items()}),
  )
  if loop.mode == "online":
    params, summary = _online(
      ctx, params, meta, checkpoints, writer, summary, solver, task, eval_prompts, latest
    )
  else:
    params, summary = _offline(
      ctx, params, meta, checkpoints, writer, summary, solver, task, eval_prompts, step_offset
    )
  summary_path.write_text(json.dumps(summary, indent=1, default=float))
  writer.close()
  checkpoints.close()
  reward_source.close()
  summary["seconds"] = time.perf_counter() - start
  logging.info("run finished in %.0fs", summary["seconds"])
  return summary


def _offline(ctx, params, meta, checkpoints, writer, summary, solver, task, eval_prompts, step_offset):
  loop, pool = ctx.loop, ctx.pool
  generation = meta["generation"]
  for round_index in range(meta["round"] + 1, loop.rounds + 1):
    step_offset[0] = round_index * 1_000_000  # distinct, increasing TensorBoard steps per round
    params, generation, stats = offline.run_round(ctx, params, round_index, generation)
    evaluation = task_eval.evaluate(solver, task, eval_prompts, loop, params=params) if eval_prompts else {}
    writer.scalars(round_index, stats | {f"eval/{k}": v for k, v in task_eval.flat(evaluation).items()})
    writer.histogram(round_index, "creator/info", [r.info for r in pool.read_generation(generation)])
    checkpoints.save(
      round_index, params, {"round": round_index, "generation": generation, "config": meta["config"]}
    )
    summary["rounds"].append(
      {"round": round_index, "generation": generation, "stats": stats, "eval": evaluation}
    )
    print(task_eval.round_line(round_index, generation, stats, evaluation))
  return params, summary


def _online(ctx, params, meta, checkpoints, writer, summary, solver, task, eval_prompts, latest):
  loop = ctx.loop
  restore = None
  if meta.get("step"):
    restore = lambda abstract: flax.serialization.from_state_dict(
      abstract, checkpoints.restore(latest, flax.serialization.to_state_dict(abstract))[0]
    )

  def on_step(step, state, generation, stats):
    writer.scalars(step, stats)
    if (step + 1) % loop.checkpoint_every_steps == 0 or step + 1 == loop.steps:
      checkpoints.save(
        step + 1,
        flax.serialization.to_state_dict(state),
        {"round": 0, "step": step + 1, "generation": generation, "config": meta["config"]},
      )
    if (step + 1) % 10 == 0:
      print(
        f"online step {step + 1}/{loop.steps}: reward {stats.get('train/reward/mean', float('nan')):.3f}, "
        f"zero-variance groups {stats['online/zero_variance_groups']:.2f}, pool {stats['online/pool_size']}"
      )

  params, generation, stats = online.run_online(
    ctx,
    params,
    start_step=meta.get("step", 0),
    generation=meta["generation"],
    restore=restore,
    on_step=on_step,
  )
  evaluation = task_eval.evaluate(solver, task, eval_prompts, loop, params=params) if eval_prompts else {}
  writer.scalars(loop.steps, {f"eval/{k}": v for k, v in task_eval.flat(evaluation).items()})
  summary["rounds"].append(
    {"round": "online", "step": loop.steps, "generation": generation, "stats": stats, "eval": evaluation}
  )
  print(task_eval.round_line(loop.steps, generation, stats, evaluation))
  return params, summary
