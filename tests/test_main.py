"""The entry point: one-line config errors from the command line, and the model check end to end."""

import json
import os
import subprocess
import sys

import numpy as np

from configs import quickstart
from eva_jax import config as config_lib
from eva_jax import model_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(*args):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run(
    [sys.executable, "-m", "eva_jax.main", "--config=configs/quickstart.py", *args],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )


def test_bad_config_value_exits_with_one_line_naming_the_field(tmp_path):
  result = _main(f"--workdir={tmp_path}", "--config.model.name=gemma9", "--config.mesh.shape.data=3")
  assert result.returncode != 0
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert lines[-1].startswith("eva_jax: invalid config: config.model.name: 'gemma9' is not one of")
  assert not (tmp_path / "params").exists()


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
