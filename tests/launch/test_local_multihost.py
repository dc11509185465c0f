"""launch/local_multihost.py: P processes x D CPU devices on 127.0.0.1, as on a pod.

The launcher's own behaviour is tested with a stand-in process (fake_job.py); the distributed
system with a small JAX job (distributed_probe.py); and eva_jax itself by running the same job as
2 processes x 2 devices and as 1 process x 4 devices and comparing what they print and write.
"""

import json
import os
import re
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from eva_jax.creator import pool as pool_lib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCHER = os.path.join(ROOT, "launch", "local_multihost.py")
# How the known multi-host gaps of the loop fail (see launch/README.md); any other failure fails the test.
LOOP_BLOCKERS = (
  "Fetching value for `jax.Array` that spans non-addressable",  # jax.device_get of a global array
  "Passing non-trivial shardings for numpy inputs is not allowed",  # host batch into a global jit
)


def _launcher(*args, timeout=120):
  start = time.monotonic()
  result = subprocess.run(
    [sys.executable, LAUNCHER, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
  )
  return result, time.monotonic() - start


def _lines(output: str, process: int) -> list[str]:
  """The lines process `process` printed, without the launcher's prefix."""
  prefix = f"[p{process}] "
  return [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)]


def test_each_process_gets_its_rank_the_coordinator_and_its_devices():
  result, _ = _launcher("--processes=3", "--devices=2", "--module=tests.launch.fake_job")
  assert result.returncode == 0, result.stdout
  envs = [json.loads(_lines(result.stdout, i)[0].removeprefix("ENV ")) for i in range(3)]
  assert [e["EVA_PROCESS_ID"] for e in envs] == ["0", "1", "2"]
  assert {e["EVA_NUM_PROCESSES"] for e in envs} == {"3"}
  (coordinator,) = {e["EVA_COORDINATOR_ADDRESS"] for e in envs}
  assert re.fullmatch(r"127\.0\.0\.1:\d+", coordinator)
  # The test process runs with 8 fake devices; each launched process gets exactly its 2.
  assert {e["XLA_FLAGS"] for e in envs} == {"--xla_force_host_platform_device_count=2"}
  assert {e["JAX_PLATFORMS"] for e in envs} == {"cpu"}
  assert all(_lines(result.stdout, i)[-1] == "finished" for i in range(3))


def test_one_failing_process_stops_the_others_and_sets_the_status():
  result, seconds = _launcher(
    "--processes=3", "--module=tests.launch.fake_job", "--", "--fail-rank=1", "--code=3", "--sleep=300"
  )
  assert result.returncode == 3
  assert seconds < 60  # the others were stopped, not waited for
  assert "[launch] process 1 exited with 3; stopping the others" in result.stdout
  assert "finished" not in result.stdout


def test_a_timeout_stops_every_process():
  result, seconds = _launcher(
    "--processes=2", "--timeout=1", "--module=tests.launch.fake_job", "--", "--sleep=300"
  )
  assert result.returncode == 124 and seconds < 60
  assert "timed out after 1s" in result.stdout


def test_two_processes_share_one_global_array(jobs):
  code, output = jobs["probe_2x2"].result()
  assert code == 0, output[-4000:]
  reports = [
    json.loads(line.removeprefix("PROBE "))
    for i in range(2)
    for line in _lines(output, i)
    if line.startswith("PROBE ")
  ]
  assert [r["process"] for r in reports] == [0, 1]
  for r in reports:
    assert r["joined"] and r["processes"] == 2 and r["devices"] == 4 and r["local_devices"] == 2
    assert not r["fully_addressable"]  # the rows really live on both processes
    assert r["main"] == (r["process"] == 0)
    x = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)  # the probe's global input
    np.testing.assert_array_equal(np.asarray(r["value"]), x * 2 + x.sum())


def _check_figures(output: str, process: int) -> list[str]:
  """The model line and the table of log-probs (everything but paths and timings)."""
  lines = _lines(output, process)
  model = [line for line in lines if line.startswith("model tiny:")]
  start = next(i for i, line in enumerate(lines) if line.startswith("prompt "))
  end = next(i for i, line in enumerate(lines) if line.startswith("checkpoint "))
  return model + lines[start:end]


def test_model_check_on_2x2_processes_matches_1x4(jobs):
  (code2, out2), (code1, out1) = jobs["check_2x2"].result(), jobs["check_1x4"].result()
  assert code2 == 0, out2[-4000:]
  assert code1 == 0, out1[-4000:]
  reference = _check_figures(out1, 0)
  assert reference[0].startswith("model tiny: mesh {'data': 2, 'fsdp': 2, 'tensor': 1} on 4 cpu device(s)")
  assert len(reference) == 2 + 8  # model line, header, 8 problems
  assert _check_figures(out2, 0) == reference
  assert _check_figures(out2, 1) == reference  # every process holds the global figures
  for out in (out1, out2):
    assert "restored params give identical log-probs" in out
  tmp = jobs["tmp"]
  figures = [json.loads((tmp / name / "model_check.json").read_text()) for name in ("check_2x2", "check_1x4")]
  for f in figures:
    f.pop("seconds")
  assert figures[0] == figures[1]


def _restore_params(path):
  """Params of a run checkpoint onto this process's first device, whatever mesh wrote them."""
  tree = ocp.StandardCheckpointer().metadata(path).item_metadata
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
  return [np.asarray(x) for x in jax.tree.leaves(ocp.StandardCheckpointer().restore(path, target))]


def _assert_close_tree(a, b, path="summary"):
  if isinstance(a, dict):
    assert sorted(a) == sorted(b), path
    for key in a:
      if not key.endswith("seconds"):
        _assert_close_tree(a[key], b[key], f"{path}.{key}")
  elif isinstance(a, list):
    assert len(a) == len(b), path
    for i, (x, y) in enumerate(zip(a, b)):
      _assert_close_tree(x, y, f"{path}[{i}]")
  elif isinstance(a, float):  # cross-process reductions sum in another order: last bits differ
    assert a == pytest.approx(b, rel=1e-4, abs=1e-6), path
  else:
    assert a == b, path


def test_train_on_2x2_processes_matches_1x4(jobs, start_job, train_flags):
  code2, out2 = jobs["train_2x2"].result()
  if code2 != 0 and any(blocker in out2 for blocker in LOOP_BLOCKERS):
    pytest.xfail(
      "eva loop not multi-host ready: sampler.sample and steps.with_reference_logps fetch sharded "
      "outputs with jax.device_get, and train steps get host NumPy batches (launch/README.md)"
    )
  assert code2 == 0, out2[-4000:]
  tmp = jobs["tmp"]
  quick, workdir = "--config=configs/quickstart.py", f"--workdir={tmp / 'train_1x4'}"
  code1, out1 = start_job("train_1x4", tmp, 1, 4, quick, workdir, *train_flags).result()
  assert code1 == 0, out1[-4000:]
  runs = [tmp / "train_2x2", tmp / "train_1x4"]
  summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
  assert summaries[0]["rounds"][1]["stats"]["round/train_pairs"] > 0  # the round trained on pairs
  _assert_close_tree(summaries[0], summaries[1])
  pools = [pool_lib.Pool(run / "pool") for run in runs]
  assert pools[0].generations() == pools[1].generations() == [0, 1]
  for generation in (0, 1):
    records = [p.read_generation(generation) for p in pools]
    keys = [[(r.prompt_id, r.text, r.parent_id, r.method) for r in rs] for rs in records]
    assert keys[0] == keys[1]
  for step in (0, 1):
    a, b = (_restore_params(run / "checkpoints" / str(step) / "params") for run in runs)
    diffs = np.concatenate([np.abs(x - y).ravel() for x, y in zip(a, b)])
    # AdamW turns tiny gradient differences into +-lr updates on a few params: bounded, rare.
    assert diffs.max() < 2e-3 and diffs.mean() < 1e-5
