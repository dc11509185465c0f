"""The held-out evaluation a run makes after a round (when `config.eval` says it is due), against round 0."""

from eva_jax.evaluation import heldout
from eva_jax.evaluation import job


class Evaluator:
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
