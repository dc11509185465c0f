"""A cut-short checkpoint step is set aside with one warning line naming the step and what does not read,
without the hundreds of traceback lines orbax's abandoned reads print after a failed restore."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

from tests.hang_guard import HANG_GUARD_S

# Run as its own process, as `python -m eva_jax.main` runs: the tracebacks go through the process's
# hooks and loggers (pytest's would collect them instead). 200 arrays, so that many reads are still
# running when orbax gives up at the first one that fails.
_SCRIPT = textwrap.dedent(
  """
  import gc, pathlib, sys, time
  from absl import logging
  logging.set_verbosity(logging.WARNING)  # as eva_jax.main sets it
  import jax.numpy as jnp
  import numpy as np
  from eva_jax.loop import run_state

  workdir, cut = pathlib.Path(sys.argv[1]), sys.argv[2]
  rng = np.random.default_rng(0)
  tree = {f"a{i}": jnp.asarray(rng.normal(size=(64, 64)), jnp.float32) for i in range(200)}
  checkpoints = run_state.RunCheckpoints(workdir, 3)
  for step in (1, 2):
    checkpoints.save(step, tree, {"round": step})
  checkpoints.close()
  step_dir = workdir / "checkpoints" / "2"
  files = [f for f in step_dir.rglob("*") if f.is_file()]
  target = max(files, key=lambda f: f.stat().st_size) if cut == "largest" else step_dir / cut
  data = target.read_bytes()
  target.write_bytes(data[: len(data) // 10])  # a full disk, or a copy cut short
  print("cut", target, flush=True)
  step, restored, meta = run_state.RunCheckpoints(workdir, 3).restore_verified(lambda meta: None)
  np.testing.assert_array_equal(restored["a7"], tree["a7"])
  for _ in range(3):  # the abandoned reads finish and are collected (their tracebacks come now)
    gc.collect()
    time.sleep(0.5)
  print("restored", step, flush=True)
  """
)


def _restore_after_cutting(workdir, cut):
  result = subprocess.run(
    [sys.executable, "-c", _SCRIPT, str(workdir), cut],
    env=os.environ | {"JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "2"},
    capture_output=True,
    text=True,
    timeout=HANG_GUARD_S,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.splitlines()[-1] == "restored 1"
  cut_file = result.stdout.splitlines()[0].removeprefix("cut ")
  return cut_file, result.stderr


def _the_warning(stderr, workdir):
  for noise in ("Traceback", "Event loop is closed", "never retrieved", "Exception ignored", "<bound method"):
    assert noise not in stderr, stderr[-3000:]
  (line,) = [line for line in stderr.splitlines() if "checkpoints_damaged" in line]
  step_dir = workdir / "checkpoints" / "2"
  assert line.startswith(f"eva_jax: warning: checkpoint {step_dir} is damaged: "), line
  assert line.endswith(f"; moved to {workdir / 'checkpoints_damaged' / '2'}, resuming from checkpoint 1")
  assert len(line) < 700
  # Whatever else is there: the runtime's start-up lines, nothing from the restore.
  assert len([other for other in stderr.splitlines() if other.strip()]) <= 6, stderr[-3000:]
  return line


def test_a_cut_short_array_file_is_named_in_one_line_without_tracebacks(tmp_path):
  _, stderr = _restore_after_cutting(tmp_path, "largest")
  line = _the_warning(stderr, tmp_path)
  # The array and the OCDBT directory TensorStore names, not orbax's repr of the TensorStore spec.
  assert re.search(
    rf'its arrays do not read \(ValueError: OUT_OF_RANGE: Error reading "a\d+/0\.0" in OCDBT database at local '
    rf'file "{tmp_path}/checkpoints/2/params/": ',
    line,
  ), line
  assert (tmp_path / "checkpoints_damaged" / "2" / "params").is_dir()


@pytest.mark.parametrize(("cut", "what"), [("params/_METADATA", "arrays"), ("meta/metadata", "metadata")])
def test_a_cut_short_metadata_file_is_named(tmp_path, cut, what):
  cut_file, stderr = _restore_after_cutting(tmp_path, cut)
  line = _the_warning(stderr, tmp_path)
  verb = "does" if what == "metadata" else "do"
  assert f"its {what} {verb} not read ({cut_file} is cut short or not JSON)" in line, line
  assert "Failed to json parse" not in stderr  # orbax's own error log of the same file, with its content
