"""A run killed with SIGKILL mid-round, or stopped by SIGTERM, resumes to the same pool generations and
params as a clean run; a damaged checkpoint is detected and the run resumes from the last good one."""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from bench import common
from configs import quickstart
from eva_jax import config as config_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.loop import metrics
from eva_jax.loop import preemption
from eva_jax.loop import run_state
from eva_jax.loop import runner
from tests.hang_guard import HANG_GUARD_S

OVERRIDES = {"loop.rounds": 2, **common.TINY_OVERRIDES}  # the benchmarks' test-sized quickstart, 2 rounds


def _config():
  return config_lib.override(quickstart.get_config(), OVERRIDES)


def _run_here(workdir):
  config = _config()
  cfg = config_lib.parse(config, jax.device_count())
  runner.run(cfg, workdir, config_lib.flatten(config))


def _final(workdir):
  checkpoints = run_state.RunCheckpoints(workdir, 2)
  step = checkpoints.latest()
  params, meta = checkpoints.restore(step, None)
  pool = pool_lib.Pool(workdir / "pool")
  texts = {g: [r.text for r in pool.read_generation(g)] for g in pool.generations()}
  last = json.loads((workdir / "summary.json").read_text())["rounds"][-1]["stats"]
  # The creator's counts of the last round (timings and the reuse marker aside).
  creator = {
    k: v
    for k, v in last.items()
    if k.startswith("creator/") and k not in ("creator/seconds", "creator/reused")
  }
  return step, jax.device_get(params), texts, creator


@pytest.fixture(scope="module")
def clean_workdir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("clean")
  _run_here(workdir)
  return workdir


@pytest.fixture(scope="module")
def clean_run(clean_workdir):
  return _final(clean_workdir)


def _interrupt_in_round_2(workdir, sig):
  """Starts the run in a subprocess and sends `sig` inside round 2; returns (exit status, stderr)."""
  args = [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
  process = subprocess.Popen(
    [sys.executable, "-m", "eva_jax.main", "--config=configs/quickstart.py", f"--workdir={workdir}", *args],
    env=os.environ | {"JAX_PLATFORMS": "cpu"},
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  # Inside round 2, after its creator committed pool generation 2 (the hardest point: the resumed
  # round must read that generation back instead of writing it again).
  marker = workdir / "pool" / "gen_000002.json"
  deadline = time.time() + HANG_GUARD_S
  while not marker.exists() and process.poll() is None and time.time() < deadline:
    time.sleep(0.05)
  assert marker.exists(), "the run never reached round 2"
  process.send_signal(sig)
  _, err = process.communicate(timeout=HANG_GUARD_S)
  return process.returncode, err


def _assert_resumes_to(workdir, clean_run):
  assert run_state.RunCheckpoints(workdir, 2).latest() == 1
  _run_here(workdir)
  step_a, params_a, texts_a, creator_a = clean_run
  step_b, params_b, texts_b, creator_b = _final(workdir)
  assert step_a == step_b == 2
  assert texts_a == texts_b and sorted(texts_a) == [0, 1, 2]
  # Round 2 was redone from the committed generation: its creator stats come back from the manifest.
  assert creator_b == creator_a and creator_a["creator/children"] > 0
  jax.tree.map(np.testing.assert_array_equal, params_a, params_b)


def test_kill_mid_round_then_resume_equals_a_clean_run(tmp_path, clean_run):
  code, _ = _interrupt_in_round_2(tmp_path, signal.SIGKILL)
  assert code == -signal.SIGKILL
  # What a kill (or a full disk) during an append leaves: the resume's rewrite of the file drops it.
  with (tmp_path / metrics.JSONL_NAME).open("a") as f:
    f.write('{"step": 2, "kind": "scalars", "creator/sec')
  _assert_resumes_to(tmp_path, clean_run)
  lines = (tmp_path / metrics.JSONL_NAME).read_text().splitlines()
  assert all(json.loads(line)["kind"] in ("scalars", "histogram") for line in lines)


def test_sigterm_stops_cleanly_and_the_round_is_redone(tmp_path, clean_run):
  code, err = _interrupt_in_round_2(tmp_path, signal.SIGTERM)
  assert code == preemption.EXIT_CODE, err[-3000:]
  assert "stopped on SIGTERM" in err and "round 2 (redone on resume)" in err
  assert "Traceback" not in err
  _assert_resumes_to(tmp_path, clean_run)


def _flip_bytes(directory: pathlib.Path, count: int = 64) -> pathlib.Path:
  """Flips `count` bytes in the middle of the largest file under `directory` (its array data)."""
  target = max((f for f in directory.rglob("*") if f.is_file()), key=lambda f: f.stat().st_size)
  data = bytearray(target.read_bytes())
  middle = len(data) // 2
  for i in range(middle, middle + count):
    data[i] ^= 0xFF
  target.write_bytes(bytes(data))
  return target


def test_a_damaged_checkpoint_is_set_aside_and_the_run_resumes_from_the_last_good_one(
  tmp_path, clean_workdir, clean_run, capfd
):
  workdir = tmp_path / "run"
  shutil.copytree(clean_workdir, workdir)
  _flip_bytes(workdir / "checkpoints" / "2" / "params")
  with pytest.raises(ValueError, match="damaged|does not read"):
    run_state.RunCheckpoints(workdir, 2).restore(2, None)
  capfd.readouterr()
  _run_here(workdir)  # rounds = 2: round 2 is redone from checkpoint 1
  err = capfd.readouterr().err
  assert "checkpoints_damaged/2, resuming from checkpoint 1" in err, err[-2000:]
  assert (workdir / "checkpoints_damaged" / "2" / "params").is_dir()
  step, params, texts, creator = _final(workdir)
  assert step == clean_run[0] == 2 and texts == clean_run[2] and creator == clean_run[3]
  jax.tree.map(np.testing.assert_array_equal, clean_run[1], params)  # the redone round, bit for bit
  assert sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == [1, 2]


def test_a_damaged_round0_reference_is_refused_with_its_path(tmp_path, clean_workdir):
  workdir = tmp_path / "run"
  shutil.copytree(clean_workdir, workdir)
  _flip_bytes(workdir / "round0")
  shutil.rmtree(workdir / "checkpoints" / "2")  # so that the run has a round left to do
  with pytest.raises(ValueError, match=r"params checkpoint .*round0 (is damaged|does not read)"):
    _run_here(workdir)


def test_no_checkpoint_verifies_nothing_is_moved(tmp_path, clean_workdir):
  workdir = tmp_path / "run"
  shutil.copytree(clean_workdir, workdir)
  for step in (1, 2):
    _flip_bytes(workdir / "checkpoints" / str(step) / "params")
  with pytest.raises(ValueError, match="no checkpoint in .* verifies: step 2: .*; step 1: "):
    _run_here(workdir)
  assert not (workdir / "checkpoints_damaged").exists()
