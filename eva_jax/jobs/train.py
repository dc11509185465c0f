"""`--mode=train` (the default): the eva run in a workdir, then its end-of-run report on the console."""

from etils import epath

from eva_jax.analysis import run_report
from eva_jax.evaluation import headline as headline_lib
from eva_jax.loop import runner
from eva_jax.parallel import distributed


def run(cfg, workdir, flat_config: dict, *, force: bool = False) -> dict:
  """Runs (or resumes) the run (`loop.runner.run`), prints the report; returns the summary."""
  workdir = epath.Path(workdir)
  summary = runner.run(cfg, workdir, flat_config, force=force)
  distributed.report(run_report.final_report(workdir, cfg.pool.dir, summary["seconds"]))
  distributed.report(headline_lib.describe(summary["headline"]))
  return summary
