"""The entry point: one-line config errors from the command line, and the model check end to end."""

import json
import os
import subprocess
import sys

import numpy as np

from bench import common
from configs import quickstart
from eva_jax import config as config_lib
from eva_jax.jobs import model_check
from tests.hang_guard import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run(
    [sys.executable, "-m", "eva_jax.main", "--config=configs/quickstart.py", *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=HANG_GUARD_S,
  )


def test_bad_config_value_exits_with_one_line_naming_the_field(tmp_path):
  result = _main(f"--workdir={tmp_path}", "--config.model.name=gemma9", "--config.mesh.shape.data=3")
  assert result.returncode != 0
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines[-1].startswith("eva_jax: invalid config: config.model.name: 'gemma9' is not one of")
  assert not (tmp_path / "params").exists()


def test_a_workdir_that_is_a_file_is_refused_in_one_line_before_the_model_is_built(tmp_path):
  workdir = tmp_path / "run"
  workdir.write_text("not a directory")
  result = _main(f"--workdir={workdir}")
  assert result.returncode != 0
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines[-1] == f"eva_jax: --workdir {workdir} is a file, not a directory"
  assert "Traceback" not in result.stderr


def test_a_missing_seed_file_is_one_line_and_verbose_shows_the_traceback(tmp_path):
  flags = (
    f"--workdir={tmp_path / 'run'}",
    "--config.pool.seed_source=jsonl",
    f"--config.pool.seed_path={tmp_path / 'no.jsonl'}",
  )
  result = _main(*flags)
  assert result.returncode != 0 and "Traceback" not in result.stderr
  last = [line for line in result.stderr.splitlines() if line.strip()][-1]
  assert last.startswith("eva_jax: ") and "no.jsonl" in last
  verbose = _main(*flags, "--verbose")
  assert verbose.returncode != 0 and "Traceback" in verbose.stderr and "no.jsonl" in verbose.stderr


def _main_in(cwd, *args):
  """`python -m eva_jax.main` with the quickstart config, started in `cwd` (not the checkout)."""
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    TF_CPP_MIN_LOG_LEVEL="2",
    PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
  )
  command = [sys.executable, "-m", "eva_jax.main", f"--config={ROOT}/configs/quickstart.py", *args]
  return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)


def test_a_relative_workdir_is_made_absolute_and_the_run_saves_its_checkpoint(tmp_path):
  # Orbax refuses a relative checkpoint path, but only when it saves: after the model was built and
  # the pool written. Round 0 only (the start's evaluation and checkpoint 0) of the test-sized run.
  overrides = {**common.TINY_OVERRIDES, "loop.rounds": 0}
  result = _main_in(tmp_path, "--workdir=runs/rel", *(f"--config.{k}={v}" for k, v in overrides.items()))
  assert result.returncode == 0, result.stderr[-3000:]
  assert (tmp_path / "runs" / "rel" / "checkpoints" / "0").is_dir()
  assert (tmp_path / "runs" / "rel" / "pool" / "gen_000000.json").is_file()
  assert str(tmp_path / "runs" / "rel" / "summary.json") in result.stdout  # the paths it reports are absolute


def test_an_empty_workdir_is_refused_in_one_line_before_anything_is_written(tmp_path):
  # `--workdir=$RUN` with RUN unset: the run must not go into the current directory (the checkout).
  result = _main_in(tmp_path, "--workdir=")
  assert result.returncode != 0
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines[-1] == "eva_jax: --workdir is empty (an unset shell variable?); give the directory of the run"
  assert "Traceback" not in result.stderr
  assert list(tmp_path.iterdir()) == []


def test_wrong_type_on_the_command_line_is_refused(tmp_path):
  result = _main(f"--workdir={tmp_path}", "--config.seed=abc")
  assert result.returncode != 0
  assert "seed" in result.stderr


def test_model_check_runs_sharded_end_to_end(tmp_path):
  config = quickstart.get_config()
  config.mesh.shape = {"data": 2, "fsdp": 2, "tensor": 2}
  config.check.num_problems = 4
  cfg = config_lib.parse(config, num_devices=8)
  figures = model_check.run(cfg, tmp_path)
  saved = json.loads((tmp_path / "model_check.json").read_text())
  assert saved == figures
  assert figures["checkpoint_roundtrip_equal"]
  assert figures["num_params"] == 804_480
  assert figures["param_bytes_device0"] < figures["num_params"] * 4 / 3  # float32, split ~4 ways
  assert np.isfinite(figures["mean_logp_answer"]) and figures["mean_logp_answer"] < 0
  assert (tmp_path / "params").is_dir()


def _train_reward_model(*args):
  """`--mode=train_reward_model` with configs/reward_model.py (a second --config would not replace the first)."""
  flags = ["--config=configs/reward_model.py", "--mode=train_reward_model", *args]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", TF_CPP_MIN_LOG_LEVEL="2")
  command = [sys.executable, "-m", "eva_jax.main", *flags]
  return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S)


def test_bad_reward_model_field_exits_naming_it(tmp_path):
  result = _train_reward_model(
    f"--workdir={tmp_path}",
    "--config.reward_model.steps=0",
  )
  assert result.returncode != 0
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines[-1] == "eva_jax: invalid config: config.reward_model.steps: 0 must be >= 1"


def test_train_reward_model_writes_a_loadable_reward_model_and_never_the_token(tmp_path, monkeypatch):
  secret = "eva-main-secret-1f6c2a9e84"
  monkeypatch.setenv("EVA_TEST_RM_KEY", secret)
  result = _train_reward_model(
    f"--workdir={tmp_path}",
    "--config.reward_model.steps=60",
    "--config.reward_model.train_pairs=512",
    "--config.reward_model.eval_pairs=64",
    "--config.reward.kind=remote",
    "--config.reward.url=http://127.0.0.1:9/score",
    "--config.reward.api_key_env=EVA_TEST_RM_KEY",
  )
  assert result.returncode == 0, result.stderr[-3000:]
  figures = json.loads((tmp_path / "reward_model_train.json").read_text())
  assert figures["steps"] == 60 and figures["eval_pairs"] == 64
  assert figures["accuracy"] > 0.9 and figures["reload_equal"]
  assert "reloaded with identical scores" in result.stdout
  assert (tmp_path / "reward_model" / "reward_model.json").is_file()
  # The run's config is written next to the params: the variable's name is there, its value nowhere.
  assert "EVA_TEST_RM_KEY" in (tmp_path / "reward_model" / "config.json").read_text()
  files = [path for path in tmp_path.rglob("*") if path.is_file()]
  assert len(files) > 5  # params, orbax metadata, config, figures
  for path in files:
    assert secret.encode() not in path.read_bytes(), path
  assert secret not in result.stdout + result.stderr
