"""`--mode=eval`: the held-out evaluation (and benchmark exports) of a run's latest params."""

from etils import epath
import jax

from eva_jax.evaluation import exports
from eva_jax.evaluation import heldout
from eva_jax.evaluation import job
from eva_jax.loop import run_state
from eva_jax.loop import setup
from eva_jax.models import params as params_lib
from eva_jax.parallel import distributed
from eva_jax.rewards import factory as reward_factory


def run(cfg, workdir: epath.PathLike) -> dict:
  """`--mode=eval`: the held-out evaluation (and benchmark exports) of the params in `workdir`.

  Uses the run's latest checkpoint when `workdir` holds one, else the configured model as loaded
  (an official checkpoint, or random init); the round-0 reference is `<workdir>/round0` if present.
  """
  workdir = epath.Path(workdir)
  if cfg.eval.export.enabled:  # question files are checked before minutes of model loading
    found = exports.read_inputs(cfg.eval.export)
    distributed.report("benchmark questions: " + ", ".join(f"{b} {n}" for b, n in found.items()))
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
    distributed.report(
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
  distributed.report(result.summary())
  distributed.report(f"wrote {out}")
  exported = []
  if cfg.eval.export.enabled:
    exported = job.export_benchmarks(
      solver.model, params, solver.tokenizer, cfg.eval, workdir, mesh=solver.mesh
    )
    for item in exported:
      distributed.report(f"exported {item}")
  checkpoints.close()
  reward_source.close()
  return result.metrics("eval")
