"""A whole eva run: seed pool, SFT warm start, offline rounds or online steps, evaluation, resume.

`run(cfg, loop_cfg, workdir, flat_config)` is what `python -m eva_jax.main --mode=train` calls. A
workdir that already holds a run resumes it from its last checkpoint (the end of a round offline;
every `checkpoint_every_steps` online), refusing a config that differs in a pinned field
(run_state.PINNED_FIELDS). The params after the warm start are kept in `<workdir>/round0` as the
evaluation's win-rate reference. SIGTERM stops the run at the next safe point (preemption.py): online
after saving the train state of the current step, offline before the interrupted round is redone.
"""

import collections
import time

from etils import epath
import flax
import jax

from eva_jax import state_files
from eva_jax import tasks
from eva_jax.analysis import curriculum
from eva_jax.creator import generation as generation_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.creator import seeds as seeds_lib
from eva_jax.creator.evolvers import factory as evolver_factory
from eva_jax.evaluation import config as eval_config
from eva_jax.evaluation import exports
from eva_jax.evaluation import headline as headline_lib
from eva_jax.evaluation import heldout
from eva_jax.evaluation import job
from eva_jax.loop import metrics as metrics_lib
from eva_jax.loop import offline
from eva_jax.loop import online
from eva_jax.loop import preemption as preemption_lib
from eva_jax.loop import run_state
from eva_jax.loop import training
from eva_jax.models import batching
from eva_jax.models import params as params_lib
from eva_jax.models import setup
from eva_jax.parallel import distributed
from eva_jax.rewards import factory as reward_factory


def _report(*args) -> None:
  """Prints on process 0 only: every process runs the same loop, one of them talks."""
  if distributed.is_main_process():
    print(*args)


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


class _Evaluator:
  """Held-out evaluation after a round (when `config.eval` says it is due), against round 0."""

  def __init__(self, cfg, solver, reward_source, round0_params, workdir):
    self.cfg, self.solver, self.reward_source, self.workdir = cfg, solver, reward_source, workdir
    self.reference_params = heldout.load_reference(
      cfg.eval.reference, round0_params, solver.model, solver.shardings
    )
    self.reference = None  # the reference's responses, sampled once and reused

  def __call__(self, params, index: int, last: int) -> dict:
    if not self.cfg.eval.due(index, last):
      return {}
    result = job.evaluate(
      self.solver.model,
      params,
      self.solver.tokenizer,
      self.reward_source,
      self.cfg.eval,
      mesh=self.solver.mesh,
      reference_params=self.reference_params if self.reference is None else None,
      reference=self.reference,
      nonfinite=self.cfg.reward.nonfinite,
      progress=False,
    )
    self.reference = result.reference
    job.write(result, self.workdir / "eval" / f"{index:06d}")
    return result.metrics("eval")


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
  loop,
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
      return run(cfg, loop, workdir, flat_config, force=force, stop=stop)
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  solver = setup.build(cfg)
  _report(f"model {cfg.model.name}: {solver.describe()}")
  writer = metrics_lib.MetricsWriter(workdir)
  checkpoints = run_state.RunCheckpoints(workdir, loop.checkpoint_keep)
  pool = pool_lib.Pool(cfg.pool.dir or workdir / "pool")
  reward_source = reward_factory.make_reward_source(cfg.reward, mesh=solver.mesh, rules=cfg.mesh.rules)
  parts = (solver, writer, checkpoints, pool, reward_source)
  try:
    summary = _run(cfg, loop, workdir, flat_config, force, stop, *parts)
    summary["seconds"] = time.perf_counter() - start
    task = tasks.get_task(cfg.eval.task) if cfg.eval.task else None
    summary["headline"] = headline_lib.headline(summary["rounds"], task, summary["seconds"])
    _write_summary(workdir / "summary.json", summary)
    if distributed.is_main_process():
      _report(_final_report(workdir, cfg.pool.dir, summary["seconds"]))
      _report(headline_lib.describe(summary["headline"]))
    return summary
  finally:
    writer.close()
    checkpoints.close()
    reward_source.close()


COARSE = ("<=2 digits", "3 digits", ">=4 digits", "other")  # end-of-run difficulty columns


def _coarse_difficulty(label: str) -> str:
  """ "3+2+1" (operand digit counts, the addition task's difficulty) -> the longest operand's class."""
  digits = [int(d) for d in label.split("+") if d.isdigit()]
  if not digits:
    return "other"
  longest = max(digits)
  return COARSE[0] if longest <= 2 else COARSE[1] if longest == 3 else COARSE[2]


def _final_report(workdir: epath.Path, pool_dir: str, seconds: float) -> str:
  """The end-of-run table: held-out results before/after, the pool per generation, where things are."""
  run = curriculum.Run(workdir, pool_dir)
  lines = [f"\n=== eva run finished in {seconds:.0f} s: {workdir} ==="]
  try:
    lines += ["held-out, per difficulty bucket (greedy):", curriculum.text_table(run.before_after())]
  except curriculum.RunDirError:
    pass
  sizes = {row["generation"]: row for row in run.pool_sizes()}
  mixes = {row["generation"]: row["counts"] for row in run.difficulty_mix()} if run.task else {}
  rows = []
  for g, row in sorted(sizes.items()):
    coarse = collections.Counter(_coarse_difficulty(b) for b, n in mixes.get(g, {}).items() for _ in range(n))
    rows.append({"generation": g, "prompts": row["prompts"], "new": row["new"], **coarse})
  columns = ["generation", "prompts", "new", *(c for c in COARSE if any(c in r for r in rows))]
  lines += ["pool per generation (prompts by difficulty):", curriculum.text_table(rows, columns)]
  lines += [
    f"summary {workdir / 'summary.json'}; metrics {workdir / metrics_lib.JSONL_NAME} and "
    f"{workdir / 'tensorboard'}; pool {pool_dir or workdir / 'pool'}; checkpoints {workdir / 'checkpoints'}; "
    f"evaluations {workdir / 'eval'}; notebooks/curriculum.ipynb plots the curriculum (EVA_RUN_DIR={workdir})"
  ]
  return "\n".join(lines)


def _sample_limit(loop, tokenizer) -> seeds_lib.PromptLimit:
  """The longest seed the rounds can sample: what the KV cache leaves after the response."""
  return seeds_lib.PromptLimit(
    count=lambda text: len(batching.encode_prompt(tokenizer, text)),
    max_tokens=loop.max_cache_length - loop.max_new_tokens,
    what="config.loop.max_cache_length - config.loop.max_new_tokens",
  )


def _run(cfg, loop, workdir, flat_config, force, stop, solver, writer, checkpoints, pool, reward_source):
  summary_path = workdir / "summary.json"
  latest = checkpoints.latest()
  last = loop.steps if loop.mode == "online" else loop.rounds
  tree = None  # the restored checkpoint's arrays
  if latest is None:
    if loop.warmstart_steps and pool.latest() is not None:
      _report(
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
      _report(f"warm start: {loop.warmstart_steps} SFT steps, final NLL {sft_metrics['nll']:.3f}")
    elif cfg.model.init == "base" and not cfg.model.checkpoint:
      _report("starting from the shipped base model (eva_jax/assets/base_tiny.msgpack; no warm start)")
    if (workdir / "round0").exists():  # a start killed before checkpoint 0: nothing depends on it yet
      _report(f"{workdir / 'round0'} is left from a start that stopped before checkpoint 0; rewriting it")
      (workdir / "round0").rmtree()
      params_lib.checksum_path(workdir / "round0").unlink(missing_ok=True)
    params_lib.save_params(workdir / "round0", params)
    evaluator = _Evaluator(cfg, solver, reward_source, params, workdir)
    evaluation = evaluator(params, 0, last)
    writer.scalars(0, evaluation)
    _report(_line("round 0 (start)", {}, evaluation))
    meta = {"round": 0, "generation": 0, "config": run_state.pinned(flat_config)}
    checkpoints.save(0, params, meta)
    summary = {"rounds": [{"round": 0, "generation": 0, "eval": evaluation}]}
    _write_summary(summary_path, summary)
  else:
    # Online checkpoints hold the whole train state; offline rounds and the warm start params only.
    target = lambda meta: (
      flax.serialization.to_state_dict(
        online.checkpoint_target(cfg, solver.shardings, solver.mesh, solver.params)
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
    writer.drop_after(_committed_record(loop, meta, _online_finished(loop, meta, summary)))
    round0 = None
    if cfg.eval.reference == eval_config.ROUND0:
      round0 = params_lib.restore_params(workdir / "round0", solver.model, solver.shardings)
    evaluator = _Evaluator(cfg, solver, reward_source, round0, workdir)
    if loop.mode == "offline":
      summary["rounds"] = _committed_rounds(summary["rounds"], meta["round"])
    _report(
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
    loop=loop,
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


def _online_finished(loop, meta, summary: dict) -> bool:
  """Whether an online run's every step and its final evaluation are done (a rerun redoes nothing)."""
  if loop.mode != "online" or meta.get("step", 0) != loop.steps:
    return False
  return any(r.get("round") == "online" and r.get("step") == loop.steps for r in summary["rounds"])


def _committed_record(loop, meta, online_finished: bool = False):
  """Whether a metrics.jsonl record belongs to what the checkpoint of `meta` committed.

  Axes (see `_offline`/`_online`): warmstart/* on the SFT step (committed by checkpoint 0), train/*
  on the global optimizer step, everything else on the round (offline) or RLOO step (online).
  """

  def committed(record: dict) -> bool:
    keys = [k for k in record if k not in ("step", "kind")]
    if record.get("kind") == "scalars" and keys and all(k.startswith("warmstart/") for k in keys):
      return True
    step = record["step"]
    if loop.mode == "online":
      if any(k.startswith("eval/") for k in keys):  # round 0's eval, or the final one (redone)
        return step == 0 or step < meta.get("step", 0) or online_finished
      return step < meta.get("step", 0)  # step s is written after RLOO step s + 1 finished
    if record.get("kind") == "scalars" and keys and all(k.startswith("train/") for k in keys):
      return step <= meta.get("train_steps", 0)
    return step <= meta["round"]

  return committed


def _committed_rounds(rounds: list[dict], last_committed: int) -> list[dict]:
  """The summary entries of rounds up to the latest checkpoint's; later ones are redone on resume."""
  return [r for r in rounds if r["round"] <= last_committed]


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
    # entry the resumed run drops and redoes (`_committed_rounds`), never a committed round without one.
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
    _report(_line(f"round {round_index} (pool generation {generation})", stats, evaluation))
    if round_index < loop.rounds:
      ctx.stop.check(f"after round {round_index} (saved)")
  return params


def _online(ctx, params, meta, restored, checkpoints, writer, summary, evaluator):
  """RLOO steps from `meta`'s step; `restored` is the checkpointed train state's dict (None: fresh)."""
  loop = ctx.loop
  if _online_finished(loop, meta, summary):  # a rerun of a finished run: as offline, nothing to redo
    _report(f"online: all {loop.steps} steps and their evaluation are done (summary.json)")
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
          "pool_stats": online.pool_stats(records),
        },
      )
    if (step + 1) % 10 == 0:
      _report(_line(f"online step {step + 1}/{loop.steps}", stats, {}))
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
  _report(_line(f"online, {loop.steps} steps (pool generation {generation})", stats, evaluation))
  return params


def evaluate_run(cfg, workdir: epath.PathLike) -> dict:
  """`--mode=eval`: the held-out evaluation (and benchmark exports) of the params in `workdir`.

  Uses the run's latest checkpoint when `workdir` holds one, else the configured model as loaded
  (an official checkpoint, or random init); the round-0 reference is `<workdir>/round0` if present.
  """
  workdir = epath.Path(workdir)
  if cfg.eval.export.enabled:  # question files are checked before minutes of model loading
    found = exports.read_inputs(cfg.eval.export)
    _report("benchmark questions: " + ", ".join(f"{b} {n}" for b, n in found.items()))
  solver = setup.build(cfg)
  params = solver.params
  checkpoints = run_state.RunCheckpoints(workdir, 1_000_000)  # never deletes anything here
  latest = checkpoints.latest()
  if latest is not None:
    meta = checkpoints.meta(latest)
    if meta.get("step"):  # online: the whole train state was saved
      tree, _ = checkpoints.restore(latest, None)
      params = jax.device_put(tree["params"], solver.shardings)
    else:
      params, _ = checkpoints.restore(latest, run_state.abstract_like(solver.params))
    _report(
      f"evaluating {workdir} at checkpoint {latest} (round {meta['round']}, step {meta.get('step', 0)})"
    )
  round0 = workdir / "round0"
  round0_params = (
    params_lib.restore_params(round0, solver.model, solver.shardings) if round0.exists() else params
  )
  reward_source = reward_factory.make_reward_source(cfg.reward, mesh=solver.mesh, rules=cfg.mesh.rules)
  result = job.evaluate(
    solver.model,
    params,
    solver.tokenizer,
    reward_source,
    cfg.eval,
    mesh=solver.mesh,
    reference_params=heldout.load_reference(
      cfg.eval.reference, round0_params, solver.model, solver.shardings
    ),
    nonfinite=cfg.reward.nonfinite,
  )
  out = job.write(result, workdir / "eval" / "final")
  _report(result.summary())
  _report(f"wrote {out}")
  exported = []
  if cfg.eval.export.enabled:
    exported = job.export_benchmarks(
      solver.model, params, solver.tokenizer, cfg.eval, workdir, mesh=solver.mesh
    )
    for item in exported:
      _report(f"exported {item}")
  checkpoints.close()
  reward_source.close()
  return result.metrics("eval")
