"""A tiny online (RLOO) eva run on the real stack: steps, creator generations, checkpoint and resume."""

import jax

from configs import quickstart_rloo
from eva_jax import config as config_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.loop import metrics
from eva_jax.loop import run_state
from eva_jax.loop import runner


def _run(workdir, steps):
  config = quickstart_rloo.get_config()
  config.loop.steps = steps
  config.loop.warmstart_steps = 80
  config.loop.warmstart_batch_size = 16
  config.eval.per_bucket = 2
  config.loop.creator_every_steps = 2
  config.loop.checkpoint_every_steps = 2
  config.pool.num_seeds = 16
  config.creator.num_evolutions = 1
  config.solver.batch_size = 16  # 4 prompts x k=4
  cfg = config_lib.parse(config, jax.device_count())
  return runner.run(cfg, cfg.loop, workdir, config_lib.flatten(config))


def test_online_steps_evolve_the_pool_and_resume(tmp_path):
  _run(tmp_path, steps=4)
  assert pool_lib.Pool(tmp_path / "pool").generations() == [0, 1, 2]
  assert run_state.RunCheckpoints(tmp_path, 2).latest() == 4
  records = [r for r in metrics.read_jsonl(tmp_path) if r["kind"] == "scalars" and "online/pool_size" in r]
  assert [r["step"] for r in records] == [0, 1, 2, 3]
  assert {"train/reward/mean", "train/kl", "train/advantage/mean_abs", "online/zero_variance_groups"} <= set(
    records[0]
  )
  _run(tmp_path, steps=6)  # resumes from the step-4 checkpoint: steps 4 and 5 only
  records = [r for r in metrics.read_jsonl(tmp_path) if r["kind"] == "scalars" and "online/pool_size" in r]
  assert [r["step"] for r in records] == [0, 1, 2, 3, 4, 5]
  assert pool_lib.Pool(tmp_path / "pool").generations() == [0, 1, 2, 3]
  assert run_state.RunCheckpoints(tmp_path, 2).latest() == 6
