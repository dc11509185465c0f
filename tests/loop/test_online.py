"""A tiny online (RLOO) eva run on the real stack: steps, creator generations, checkpoint and resume."""

import json
import re

import jax
import pytest

from configs import quickstart_rloo
from eva_jax import config as config_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.loop import metrics
from eva_jax.loop import run_state
from eva_jax.loop import runner


def _run(workdir, steps, **overrides):
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
  config_lib.override(config, overrides)
  cfg = config_lib.parse(config, jax.device_count())
  return runner.run(cfg, workdir, config_lib.flatten(config))


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
  # Rerunning the finished run redoes nothing: no second evaluation, no second `online` entry.
  finished = json.loads((tmp_path / "summary.json").read_text())
  records = metrics.read_jsonl(tmp_path)
  _run(tmp_path, steps=6)
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["rounds"] == finished["rounds"]
  assert [r["step"] for r in summary["rounds"] if r["round"] == "online"] == [4, 6]
  assert metrics.read_jsonl(tmp_path) == records


def test_online_steps_that_stay_non_finite_stop_and_keep_the_checkpoint_before(tmp_path):
  diverge = {"solver.optimizer.learning_rate": 1e38, "solver.optimizer.warmup_frac": 0.0}
  diverge |= {"solver.max_nonfinite_steps": 2, "loop.prompts": "static"}
  with pytest.raises(
    ValueError, match=r"RLOO steps .*: 2 consecutive optimizer steps .*last finite loss"
  ) as e:
    _run(tmp_path, steps=8, **diverge)
  stopped = int(re.search(r"\(steps \d+-(\d+),", str(e.value)).group(1))  # optimizer updates = steps here
  latest = run_state.RunCheckpoints(tmp_path, 2).latest()
  assert latest is not None and latest <= stopped  # a checkpoint of the steps before, none after
