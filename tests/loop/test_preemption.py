"""SIGTERM: the flag and its handler, and an online run stopped mid-way that saves, exits and resumes exactly."""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from configs import quickstart_rloo
from eva_jax import config as config_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.loop import metrics
from eva_jax.loop import preemption
from eva_jax.loop import run_state
from eva_jax.loop import runner
from tests.hang_guard import HANG_GUARD_S

OVERRIDES = {
  "loop.steps": 8,
  "loop.warmstart_steps": 80,
  "loop.warmstart_batch_size": 16,
  "eval.per_bucket": 1,
  "loop.creator_every_steps": 3,
  "loop.checkpoint_every_steps": 4,
  "pool.num_seeds": 16,
  "creator.num_evolutions": 1,
  "solver.batch_size": 16,  # 4 prompts x k=4
}


def test_sigterm_sets_the_flag_instead_of_killing_and_the_old_handler_comes_back():
  stop = preemption.Preemption()
  before = signal.getsignal(signal.SIGTERM)
  with stop.installed():
    stop.check()  # nothing requested yet
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)  # the handler runs between bytecodes of the main thread
    assert stop.requested()
    with pytest.raises(preemption.Preempted, match="step 3"):
      stop.check("step 3")
  assert signal.getsignal(signal.SIGTERM) == before


def _run_here(workdir):
  config = config_lib.override(quickstart_rloo.get_config(), OVERRIDES)
  cfg = config_lib.parse(config, jax.device_count())
  runner.run(cfg, workdir, config_lib.flatten(config))


def _final(workdir):
  checkpoints = run_state.RunCheckpoints(workdir, 2)
  tree, _ = checkpoints.restore(checkpoints.latest(), None)
  pool = pool_lib.Pool(workdir / "pool")
  records = {g: [(r.text, r.info) for r in pool.read_generation(g)] for g in pool.generations()}
  return jax.device_get(tree["params"]), records


def test_online_run_stopped_by_sigterm_saves_its_step_and_resumes_to_the_clean_result(tmp_path):
  clean, stopped = tmp_path / "clean", tmp_path / "stopped"
  _run_here(clean)
  args = [f"--config.{k}={v}" for k, v in OVERRIDES.items()]
  process = subprocess.Popen(
    [
      sys.executable,
      "-m",
      "eva_jax.main",
      "--config=configs/quickstart_rloo.py",
      f"--workdir={stopped}",
      *args,
    ],
    env=os.environ | {"JAX_PLATFORMS": "cpu"},
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  # SIGTERM once the first RLOO step is logged: the run stops at a step that is (most likely) not a
  # checkpoint step, so it must save that step itself, with the pool's step-by-step scores.
  deadline = time.time() + HANG_GUARD_S
  while process.poll() is None and time.time() < deadline:
    if any("online/pool_size" in r for r in metrics.read_jsonl(stopped)):
      break
    time.sleep(0.05)
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=HANG_GUARD_S)
  assert process.returncode == preemption.EXIT_CODE, err[-3000:]
  assert "stopped on SIGTERM after online step" in err and "Traceback" not in err
  saved = run_state.RunCheckpoints(stopped, 2)
  step = saved.latest()
  assert 1 <= step < OVERRIDES["loop.steps"]
  meta = saved.meta(step)
  assert meta["step"] == step and len(meta["pool_stats"]) == len(
    pool_lib.Pool(stopped / "pool").read_generation(meta["generation"])
  )
  saved.close()
  _run_here(stopped)
  params_a, records_a = _final(clean)
  params_b, records_b = _final(stopped)
  assert json.dumps(records_a) == json.dumps(records_b)  # NaN-safe equality of texts and scores
  jax.tree.map(np.testing.assert_array_equal, params_a, params_b)


def test_sigterm_while_importing_exits_75_with_a_message(tmp_path):
  # The loop's own handler is installed only once the run starts; before that (imports of JAX and
  # TensorFlow take seconds) eva_jax.main's early handler reports the stop.
  process = subprocess.Popen(
    [sys.executable, "-m", "eva_jax.main", "--config=configs/quickstart.py", f"--workdir={tmp_path}"],
    env=os.environ | {"JAX_PLATFORMS": "cpu"},
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
    text=True,
  )
  # Signal once the early handler is installed (Linux lists caught signals in SigCgt), which is
  # before the imports of JAX and TensorFlow: a fixed sleep could land before it on a loaded machine.
  deadline = time.time() + HANG_GUARD_S
  while not _catches_sigterm(process.pid) and process.poll() is None and time.time() < deadline:
    time.sleep(0.01)
  process.send_signal(signal.SIGTERM)
  _, err = process.communicate(timeout=HANG_GUARD_S)
  assert process.returncode == preemption.EXIT_CODE, err[-2000:]
  assert "eva_jax: stopped on SIGTERM outside the eva loop" in err and "Traceback" not in err


def _catches_sigterm(pid: int) -> bool:
  with open(f"/proc/{pid}/status") as f:
    caught = next(line for line in f if line.startswith("SigCgt:")).split()[1]
  return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))
