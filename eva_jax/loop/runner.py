"""A whole eva run: seed pool, SFT warm start, offline rounds or online steps, evaluation, resume.

`run(cfg, workdir, flat_config)` is what `python -m eva_jax.main --mode=train` calls
(through eva_jax/jobs/train.py, which prints the end-of-run report). A
workdir that already holds a run resumes it from its last checkpoint (the end of a round offline;
every `checkpoint_every_steps` online), refusing a config that differs in a pinned field
(run_state.PINNED_FIELDS). The params after the warm start are kept in `<workdir>/round0` as the
evaluation's win-rate reference. SIGTERM stops the run at the next safe point (preemption.py): online
after saving the train state of the current step, offline before the interrupted round is redone.
"""

import dataclasses
import time

from etils import epath
import flax

from eva_jax import state_files
from eva_jax import tasks
from eva_jax.creator import generation as generation_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.creator import seeds as seeds_lib
from eva_jax.creator.evolvers import factory as evolver_factory
from eva_jax.evaluation import config as eval_config
from eva_jax.evaluation import headline as headline_lib
from eva_jax.loop import evaluator as evaluator_lib
from eva_jax.loop import metrics as metrics_lib
from eva_jax.loop import offline
from eva_jax.loop import online
from eva_jax.loop import online_state
from eva_jax.loop import preemption as preemption_lib
from eva_jax.loop import resume
from eva_jax.loop import run_state
from eva_jax.loop import setup
from eva_jax.loop import training
from eva_jax.models import batching
from eva_jax.models import params as params_lib
from eva_jax.parallel import distributed
from eva_jax.rewards import factory as reward_factory


def _write_summary(path: epath.Path, summary: dict) -> None:
  if distributed.is_main_process():
    state_files.write_json(path, summary, indent=1)


def _warm_start(cfg, loop, solver: setup.SolverModel, writer, stop: preemption_lib.Preemption):
  task = tasks.get_task(cfg.creator.task)
  prompts = task.seed_prompts(max(4096, loop.warmstart_batch_size), cfg.seed + 1)
  answers = [task.reference(p) for p in prompts]
  return training.sft(
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
    max_nonfinite_steps=cfg.solver.max_nonfinite_steps,
    on_metrics=lambda i, m: (
      writer.scalars(i, {f"warmstart/{k}": v for k, v in m.items()}) if i % 20 == 0 else None,
      stop.check("during the warm start (it is redone on resume)"),
    ),
  )


def _line(label: str, stats: dict, evaluation: dict) -> str:
  buckets = " ".join(
    f"{k.rsplit('/', 1)[1]}:{v:.2f}" for k, v in evaluation.items() if k.startswith("eval/exact_match/")
  )
  win = evaluation.get("eval/win_rate")
  return (
    f"{label}: pool {stats.get('round/pool_size', stats.get('online/pool_size', 0))} prompts, "
    f"{stats.get('round/train_pairs', 0)} pairs, sampled reward {stats.get('round/reward_mean', stats.get('train/reward/mean', float('nan'))):.3f}; "
    f"held-out reward {evaluation.get('eval/reward', float('nan')):.3f}"
    + (f", win rate vs round 0 {100 * win:.1f}%" if win is not None else "")
    + (f", exact [{buckets}]" if buckets else "")
  )


def run(
  cfg,
  workdir: epath.PathLike,
  flat_config: dict,
  *,
  force: bool = False,
  stop: preemption_lib.Preemption | None = None,
) -> dict:
  """Runs (or resumes) the eva run in `workdir`; returns the summary (also in `<workdir>/summary.json`).

  Raises `preemption.Preempted` when `stop` (default: a new one handling SIGTERM) was requested; what
  was finished is saved and a rerun resumes from it.
  """
  if stop is None:
    stop = preemption_lib.Preemption()
    with stop.installed():
      return run(cfg, workdir, flat_config, force=force, stop=stop)
  loop = cfg.loop
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  solver = setup.build(cfg)
  distributed.report(f"model {cfg.model.name}: {solver.describe()}")
  writer = metrics_lib.MetricsWriter(workdir)
  checkpoints = run_state.RunCheckpoints(workdir, loop.checkpoint_keep)
  pool = pool_lib.Pool(cfg.pool.dir or workdir / "pool")
  reward_source = reward_factory.make_reward_source(cfg.reward, mesh=solver.mesh, rules=cfg.mesh.rules)
  parts = _Parts(solver, writer, checkpoints, pool, reward_source)
  try:
    summary = _run(cfg, loop, workdir, flat_config, force, stop, parts)
    summary["seconds"] = time.perf_counter() - start
    task = tasks.get_task(cfg.eval.task) if cfg.eval.task else None
    summary["headline"] = headline_lib.headline(summary["rounds"], task, summary["seconds"])
    _write_summary(workdir / "summary.json", summary)
    return summary
  finally:
    writer.close()
    checkpoints.close()
    reward_source.close()


def _sample_limit(loop, tokenizer) -> seeds_lib.PromptLimit:
  """The longest seed the rounds can sample: what the KV cache leaves after the response."""
  return seeds_lib.PromptLimit(
    count=lambda text: len(batching.encode_prompt(tokenizer, text)),
    max_tokens=loop.max_cache_length - loop.max_new_tokens,
    what="config.loop.max_cache_length - config.loop.max_new_tokens",
  )


@dataclasses.dataclass(frozen=True)
class _Parts:
  """What a run opens once and closes at its end."""

  solver: setup.SolverModel
  writer: metrics_lib.MetricsWriter
  checkpoints: run_state.RunCheckpoints
  pool: pool_lib.Pool
  reward_source: object  # rewards.base.RewardSource


def _run(cfg, loop, workdir, flat_config, force, stop, parts: _Parts):
  solver, writer, checkpoints, pool = parts.solver, parts.writer, parts.checkpoints, parts.pool
  reward_source = parts.reward_source
  summary_path = workdir / "summary.json"
  latest = checkpoints.latest()
  last = loop.steps if loop.mode == "online" else loop.rounds
  tree = None  # the restored checkpoint's arrays
  if latest is None:
    if loop.warmstart_steps and pool.latest() is not None:
      distributed.report(
        f"{workdir} has no checkpoint 0 yet (an earlier start stopped before it): the warm start "
        f"restarts from step 0 of {loop.warmstart_steps}"
      )
    if pool.latest() is None:
      seeds = generation_lib.initial_generation(
        cfg.pool,
        cfg.creator,
        seed=cfg.seed,
        count_tokens=lambda text: len(solver.tokenizer.encode(text)),
        sample_limit=_sample_limit(loop, solver.tokenizer),
      )
      pool.write_generation(0, seeds.records, seeds.stats)
    params = solver.params
    if loop.warmstart_steps:
      params, sft_metrics = _warm_start(cfg, loop, solver, writer, stop)
      distributed.report(f"warm start: {loop.warmstart_steps} SFT steps, final NLL {sft_metrics['nll']:.3f}")
    elif cfg.model.init == "base" and not cfg.model.checkpoint:
      distributed.report(
        "starting from the shipped base model (eva_jax/assets/base_tiny.msgpack; no warm start)"
      )
    if (workdir / "round0").exists():  # a start killed before checkpoint 0: nothing depends on it yet
      distributed.report(
        f"{workdir / 'round0'} is left from a start that stopped before checkpoint 0; rewriting it"
      )
      (workdir / "round0").rmtree()
      params_lib.checksum_path(workdir / "round0").unlink(missing_ok=True)
    params_lib.save_params(workdir / "round0", params)
    evaluator = evaluator_lib.Evaluator(cfg, solver, reward_source, params, workdir)
    evaluation = evaluator(params, 0, last)
    writer.scalars(0, evaluation)
    distributed.report(_line("round 0 (start)", {}, evaluation))
    meta = {"round": 0, "generation": 0, "config": run_state.pinned(flat_config)}
    checkpoints.save(0, params, meta)
    summary = {"rounds": [{"round": 0, "generation": 0, "eval": evaluation}]}
    _write_summary(summary_path, summary)
  else:
    # Online checkpoints hold the whole train state; offline rounds and the warm start params only.
    target = lambda meta: (
      flax.serialization.to_state_dict(
        online_state.checkpoint_target(cfg, solver.shardings, solver.mesh, solver.params)
      )
      if meta.get("step")
      else run_state.abstract_like(solver.params)
    )
    latest, tree, meta = checkpoints.restore_verified(
      target,
      check=lambda meta: run_state.check_compatible(
        meta["config"], run_state.pinned(flat_config), force=force
      ),
    )
    params = solver.params if meta.get("step") else tree
    checkpoints.prune(latest)  # steps left past the retention by a kill right after a save
    summary = state_files.read_json(summary_path) if summary_path.exists() else {"rounds": []}
    # records of the work about to be redone
    writer.drop_after(resume.committed_record(loop, meta, resume.online_finished(loop, meta, summary)))
    round0 = None
    if cfg.eval.reference == eval_config.ROUND0:
      round0 = params_lib.restore_params(workdir / "round0", solver.model, solver.shardings)
    evaluator = evaluator_lib.Evaluator(cfg, solver, reward_source, round0, workdir)
    if loop.mode == "offline":
      summary["rounds"] = resume.committed_rounds(summary["rounds"], meta["round"])
    distributed.report(
      f"resuming {workdir}: round {meta['round']} / step {meta.get('step', 0)} done, pool generation {meta['generation']}"
    )

  evolver = evolver_factory.build_evolver(
    cfg.creator, model=solver.model, params=params, tokenizer=solver.tokenizer, mesh=solver.mesh
  )
  # TensorBoard axes: train/* on the global optimizer step (summed over rounds, kept in each
  # checkpoint's meta so a resumed run continues it), round summaries and evals on the round.
  progress = {"round": meta["round"], "train_steps": meta.get("train_steps", 0)}
  ctx = offline.RoundContext(
    cfg=cfg,
    model=solver.model,
    tokenizer=solver.tokenizer,
    mesh=solver.mesh,
    param_shardings=solver.shardings,
    reward_source=reward_source,
    evolver=evolver,
    pool=pool,
    on_metrics=lambda i, m: (
      writer.scalars(progress["train_steps"] + i + 1, {f"train/{k}": v for k, v in m.items()}),
      stop.check(f"round {progress['round']} (redone on resume)"),
    ),
    stop=stop,
  )
  if loop.mode == "online":
    restored = tree if meta.get("step") else None
    params = _online(ctx, params, meta, restored, checkpoints, writer, summary, evaluator)
  else:
    params = _offline(ctx, params, meta, checkpoints, writer, (summary, summary_path), evaluator, progress)
  return summary


def _offline(ctx, params, meta, checkpoints, writer, summary_and_path, evaluator, progress):
  loop, pool = ctx.loop, ctx.pool
  summary, summary_path = summary_and_path
  generation = meta["generation"]
  for round_index in range(meta["round"] + 1, loop.rounds + 1):
    progress["round"] = round_index
    params, generation, stats = offline.run_round(ctx, params, round_index, generation)
    progress["train_steps"] += stats["round/train_steps"]
    times = metrics_lib.PhaseTimes()
    with times("eval"):
      evaluation = evaluator(params, round_index, loop.rounds)
    # The round's record is written before its checkpoint commits it, so a kill in between leaves an
    # entry the resumed run drops and redoes (`resume.committed_rounds`), never a committed round without one.
    stats |= times.stats()
    entry = {"round": round_index, "generation": generation, "stats": stats, "eval": evaluation}
    summary["rounds"].append(entry)
    _write_summary(summary_path, summary)  # a stopped or killed run keeps its finished rounds
    # train/* of the last step are already on the optimizer-step axis; at step=round they would
    # step back in time on that series.
    writer.scalars(round_index, {k: v for k, v in (stats | evaluation).items() if not k.startswith("train/")})
    writer.histogram(round_index, "creator/info", [r.info for r in pool.read_generation(generation)])
    with times("checkpoint"):
      checkpoints.save(
        round_index,
        params,
        {
          "round": round_index,
          "generation": generation,
          "config": meta["config"],
          "train_steps": progress["train_steps"],
        },
      )
    stats |= times.stats()
    writer.scalars(round_index, {"time/checkpoint": stats["time/checkpoint"]})
    _write_summary(summary_path, summary)
    distributed.report(_line(f"round {round_index} (pool generation {generation})", stats, evaluation))
    if round_index < loop.rounds:
      ctx.stop.check(f"after round {round_index} (saved)")
  return params


def _online(ctx, params, meta, restored, checkpoints, writer, summary, evaluator):
  """RLOO steps from `meta`'s step; `restored` is the checkpointed train state's dict (None: fresh)."""
  loop = ctx.loop
  if resume.online_finished(loop, meta, summary):  # a rerun of a finished run: as offline, nothing to redo
    distributed.report(f"online: all {loop.steps} steps and their evaluation are done (summary.json)")
    return params
  restore = None
  if restored is not None:
    restore = lambda abstract: flax.serialization.from_state_dict(abstract, restored)

  def on_step(step, state, generation, stats, records):
    writer.scalars(step, stats)
    due = (step + 1) % loop.checkpoint_every_steps == 0 or step + 1 == loop.steps
    stopping = step + 1 < loop.steps and ctx.stop.requested()
    if due or stopping:
      checkpoints.save(
        step + 1,
        flax.serialization.to_state_dict(state),
        {
          "round": 0,
          "step": step + 1,
          "generation": generation,
          "config": meta["config"],
          "pool_stats": online_state.pool_stats(records),
        },
      )
    if (step + 1) % 10 == 0:
      distributed.report(_line(f"online step {step + 1}/{loop.steps}", stats, {}))
    if stopping:
      raise preemption_lib.Preempted(f"after online step {step + 1} (saved)")

  params, generation, stats = online.run_online(
    ctx,
    params,
    start_step=meta.get("step", 0),
    generation=meta["generation"],
    restore=restore,
    on_step=on_step,
    stats_restored=meta.get("pool_stats"),
  )
  evaluation = evaluator(params, loop.steps, loop.steps)
  writer.scalars(loop.steps, evaluation)
  summary["rounds"].append(
    {"round": "online", "step": loop.steps, "generation": generation, "stats": stats, "eval": evaluation}
  )
  distributed.report(_line(f"online, {loop.steps} steps (pool generation {generation})", stats, evaluation))
  return params
