"""The online quickstart: the same tiny model and task, with RLOO steps instead of offline rounds.

    .venv/bin/python -m eva_jax.main --config=configs/quickstart_rloo.py --workdir=/tmp/eva_rloo

Every step draws 16 prompts (weighted by informativeness), samples 4 responses each, scores them
with the task reward and takes an RLOO step; every 20 steps the creator evolves the pool.
"""

from eva_jax import config_files

quickstart = config_files.sibling(__file__, "quickstart")


def get_config(arg: str | None = None):
  config = quickstart.get_config(arg)
  config.loop.mode = "online"  # RLOO steps.
  config.solver.loss = "rloo"  # The online solver.
  config.solver.rloo_k = 4  # Samples per prompt.
  config.solver.batch_size = 64  # Rows per step = 16 prompts x 4 samples.
  config.solver.beta = 0.05  # KL to the warm-started reference, folded into the reward.
  config.solver.optimizer.learning_rate = 3e-5  # RL moves little at this scale (see DESIGN.md).
  config.solver.optimizer.warmup_frac = 0.05  # Short warmup.
  config.loop.steps = 200  # RLOO steps.
  return config
