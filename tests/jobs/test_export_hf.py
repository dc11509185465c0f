"""`--mode=export_hf`: a run checkpoint, read back by transformers, gives our logits."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from configs import quickstart
from eva_jax import config as config_lib
from eva_jax.jobs import export_hf
from eva_jax.loop import run_state
from eva_jax.loop import setup
from tests.hang_guard import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repository


@pytest.fixture(scope="module")
def cfg():
  return config_lib.parse(quickstart.get_config(), num_devices=jax.device_count())


@pytest.fixture(scope="module")
def solver(cfg):
  return setup.build(cfg)


def scaled(params, factor):
  return jax.tree.map(lambda x: x * factor, params)


def their_logits(path, ids):
  model = transformers.AutoModelForCausalLM.from_pretrained(
    path, dtype=torch.float32, attn_implementation="eager"
  )
  with torch.no_grad():
    return model.eval()(torch.tensor(ids)).logits.numpy()


def our_logits(solver, params, ids):
  return np.asarray(solver.model.apply({"params": params}, jnp.asarray(ids)).logits)


def assert_close(got, want):
  assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, solver):
  """A run with offline checkpoints 1 and 2 (params scaled so they differ) and online step 3."""
  workdir = tmp_path_factory.mktemp("run")
  checkpoints = run_state.RunCheckpoints(workdir, 10)
  checkpoints.save(1, scaled(solver.params, 0.9), {"round": 1})
  checkpoints.save(2, scaled(solver.params, 1.1), {"round": 2})
  checkpoints.close()
  return workdir


IDS = np.random.RandomState(0).randint(3, 512, size=(2, 40))


@pytest.mark.parametrize(("step", "factor"), [(None, 1.1), (1, 0.9)])
def test_the_chosen_checkpoint_is_what_transformers_reads(cfg, solver, run_dir, tmp_path, step, factor):
  out = export_hf.run(cfg, run_dir, str(tmp_path / "hf"), step=step, dtype="float32")
  assert_close(their_logits(out, IDS), our_logits(solver, scaled(solver.params, factor), IDS))
  assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == [1, 6]


def test_an_online_checkpoint_exports_its_params(cfg, solver, tmp_path):
  checkpoints = run_state.RunCheckpoints(tmp_path / "run", 10)
  state = {"params": scaled(solver.params, 1.2), "step": np.asarray(7, np.int32)}
  checkpoints.save(3, state, {"round": 0, "step": 7})
  checkpoints.close()
  out = export_hf.run(cfg, tmp_path / "run", str(tmp_path / "hf"), dtype="float32")
  assert_close(their_logits(out, IDS), our_logits(solver, state["params"], IDS))


def test_a_step_the_run_does_not_hold_is_refused_naming_the_steps(cfg, run_dir, tmp_path):
  with pytest.raises(ValueError, match=r"--step 5: .*checkpoints holds steps \[1, 2\]"):
    export_hf.run(cfg, run_dir, str(tmp_path / "hf"), step=5)
  assert not (tmp_path / "hf").exists()


def test_the_command_line_exports_the_configured_model_of_a_run_without_checkpoints(solver, tmp_path):
  # One subprocess: the flags reach export_hf.run; the errors are checked in-process below.
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", TF_CPP_MIN_LOG_LEVEL="2")
  command = [sys.executable, "-m", "eva_jax.main", "--config=configs/quickstart.py", "--mode=export_hf"]
  args = [f"--workdir={tmp_path / 'run'}", f"--export_dir={tmp_path / 'hf'}"]
  result = subprocess.run(
    command + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "holds no run checkpoint: exporting the configured model (base)" in result.stderr
  assert json.loads((tmp_path / "hf" / "config.json").read_text())["dtype"] == "bfloat16"
  rounded = jax.tree.map(lambda x: x.astype(jnp.bfloat16).astype(jnp.float32), solver.params)
  assert_close(their_logits(tmp_path / "hf", IDS), our_logits(solver, rounded, IDS))


def test_an_existing_export_directory_is_refused_before_anything_loads(cfg, run_dir, tmp_path):
  (tmp_path / "hf").mkdir()
  with pytest.raises(
    ValueError, match=r"export directory .*/hf already exists \(pass --replace to overwrite it\)"
  ):
    export_hf.run(cfg, run_dir, str(tmp_path / "hf"))
  out = export_hf.run(cfg, run_dir, str(tmp_path / "hf"), replace=True)
  assert (out / "model.safetensors").is_file()
