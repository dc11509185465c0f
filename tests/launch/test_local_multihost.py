"""launch/local_multihost.py: P processes x D CPU devices on 127.0.0.1, as on a pod.

The launcher's own behaviour is tested with a stand-in process (fake_job.py); the distributed
system with small JAX jobs (distributed_probe.py, reward_probe.py against a real reward server on
127.0.0.1); and eva_jax itself by running the same job as 2 processes x 2 devices and as 1 process
x 4 devices (offline rounds and online RLOO steps) and comparing what they print and write, and by
killing one process of a 2 x 2 run between two rounds and resuming it. The jobs start together at
the beginning of the session (conftest.py).
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
from eva_jax.loop import preemption
from tests.hang_guard import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCHER = os.path.join(ROOT, "launch", "local_multihost.py")


def _launcher(*args, timeout=HANG_GUARD_S):
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


def test_a_killed_process_stops_the_others_with_the_shell_status():
  result, seconds = _launcher(
    "--processes=2", "--module=tests.launch.fake_job", "--", "--kill-rank=1", "--sleep=300"
  )
  assert result.returncode == 128 + 9 and seconds < 60
  assert "[launch] process 1 was killed by SIGKILL; stopping the others" in result.stdout
  assert re.search(r"^\[launch\] process 1: pid \d+$", result.stdout, re.MULTILINE)


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
  # Progress bars: only process 0 draws them, even one created with disable=False.
  assert [r["bar_disabled"] for r in reports] == [False, True]
  assert any("probe bar" in line for line in _lines(output, 0))
  assert not any("probe bar" in line for line in _lines(output, 1))


def _report(output: str, prefix: str) -> list[dict]:
  """The `<prefix> <json>` line of each process, in process order."""
  return [
    json.loads(line.removeprefix(prefix + " "))
    for i in range(2)
    for line in _lines(output, i)
    if line.startswith(prefix + " ")
  ]


def test_remote_and_model_rewards_on_two_processes(jobs):
  from tests.launch import reward_probe

  code, output = jobs["reward_2x2"].result()
  assert code == 0, output[-4000:]
  reports = _report(output, "REWARDS")
  assert [r["process"] for r in reports] == [0, 1]
  # Remote: both processes got the same rewards, bit for bit, and they are the task's rewards...
  assert reports[0]["remote"] == reports[1]["remote"]
  prompts, responses = reward_probe.pairs()
  counting = jobs["reward_server"].source
  expected = counting.source.score(prompts, responses)
  np.testing.assert_array_equal(np.frombuffer(bytes.fromhex(reports[0]["remote"]), np.float32), expected)
  # ... and only process 0 asked for them: the server saw each batch once.
  assert [r["requests"] for r in reports] == [3, 0]
  assert sorted(counting.batches) == sorted([prompts[0:4], prompts[4:8], prompts[8:10]])
  # A failure on process 0 reaches every process as an error, not as a hang.
  assert "connection failed" in reports[0]["down_error"]
  assert reports[1]["down_error"].startswith(
    "process 0 failed: RewardServerError: reward server http://127.0.0.1"
  )
  assert "connection failed" in reports[1]["down_error"]
  # The LLM evolver's HTTP backend: process 0 alone sent the 3 rewrite requests, and both processes
  # got its completions (text, finish reason, attempts), bit for bit.
  llm = jobs["llm_endpoint"]
  assert len(llm.requests) == 3
  assert reports[0]["evolver"] == reports[1]["evolver"] and len(reports[0]["evolver"]) == 3
  assert all(text and finish == "stop" and attempts == 1 for text, finish, attempts in reports[0]["evolver"])
  # Model: a reward model sharded over both processes' devices gives every process all rewards,
  # equal to the same model on one device.
  assert reports[0]["model_global"] == reports[1]["model_global"]
  for r in reports:
    global_, local = (np.frombuffer(bytes.fromhex(r[k]), np.float32) for k in ("model_global", "model_local"))
    assert global_.shape == (reward_probe.NUM_PAIRS,) and np.isfinite(global_).all()
    np.testing.assert_allclose(global_, local, rtol=1e-5, atol=1e-6)


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


def _is_timing(key: str) -> bool:
  """Wall-clock figures (phase times, throughput): they differ from run to run."""
  return key.endswith(("seconds", "_per_s")) or key.startswith("time/")


def _assert_close_tree(a, b, path="summary", rel=1e-4):
  """Equal summaries, but for timings and float rounding (`rel`)."""
  if isinstance(a, dict):
    assert sorted(a) == sorted(b), path
    for key in a:
      if not _is_timing(key):
        _assert_close_tree(a[key], b[key], f"{path}.{key}", rel)
  elif isinstance(a, list):
    assert len(a) == len(b), path
    for i, (x, y) in enumerate(zip(a, b)):
      _assert_close_tree(x, y, f"{path}[{i}]", rel)
  elif isinstance(a, float):  # cross-process reductions sum in another order: last bits differ
    assert a == pytest.approx(b, rel=rel, abs=1e-5), path  # abs: DPO rewards are small differences
  else:
    assert a == b, path


def _assert_same_pool(runs, generations):
  pools = [pool_lib.Pool(run / "pool") for run in runs]
  for pool in pools:
    assert pool.generations() == generations
  for generation in generations:
    records = [p.read_generation(generation) for p in pools]
    keys = [[(r.prompt_id, r.text, r.parent_id, r.method) for r in rs] for rs in records]
    assert all(k == keys[0] for k in keys), f"pool generation {generation} differs"


def _assert_close_params(runs, step):
  a, b = (_restore_params(run / "checkpoints" / str(step) / "params") for run in runs)
  diffs = np.concatenate([np.abs(np.float64(x) - np.float64(y)).ravel() for x, y in zip(a, b)])
  # AdamW turns tiny gradient differences into +-lr updates on a few params: bounded, rare.
  assert diffs.max() < 2e-3 and diffs.mean() < 1e-5, (step, diffs.max(), diffs.mean())


def _results(jobs, *names):
  results = [jobs[name].result() for name in names]
  for name, (code, output) in zip(names, results):
    assert code == 0, f"{name}: {output[-4000:]}"
  return results


def test_killing_one_process_stops_the_run_and_the_same_command_resumes_it(jobs):
  (code, out), (code_resumed, out_resumed) = jobs["train_2x2"].results()
  # The launcher stopped the surviving process and failed with the killed one's status.
  assert code == 128 + 9, out[-4000:]
  assert "[launch] process 1 was killed by SIGKILL; stopping the others" in out
  assert "round 2 (pool generation" not in out  # killed between the rounds
  assert code_resumed == 0, out_resumed[-4000:]
  run = jobs["tmp"] / "train_2x2"
  assert f"[p0] resuming {run}: round 1 / step 0 done, pool generation 1" in out_resumed
  assert "[p0] round 2 (pool generation 2)" in out_resumed
  assert "warm start" not in out_resumed and "round 1 (pool generation" not in out_resumed


def test_sigterm_to_one_process_stops_every_process_at_the_same_point_and_resumes(jobs):
  (code, out), (code_resumed, out_resumed) = jobs["term_2x2"].results()
  # Process 1 was signalled; process 0 stopped too (the flag is combined across processes) and
  # reported where; the launcher's status is the stop's 75, not a kill's.
  assert code == preemption.EXIT_CODE, out[-4000:]
  assert "[p0] eva_jax: stopped on SIGTERM" in out and "rerun the same command to resume" in out
  assert "Traceback" not in out
  assert code_resumed == 0, out_resumed[-4000:]
  assert "[p0] round 2 (pool generation 2)" in out_resumed
  _assert_matches_1x4(jobs, jobs["tmp"] / "term_2x2")


def test_train_on_2x2_processes_matches_1x4(jobs):
  """The 2 x 2 run was killed after round 1 and resumed: its results must not show it."""
  _, (code_resumed, out_resumed) = jobs["train_2x2"].results()
  assert code_resumed == 0, out_resumed[-4000:]
  _assert_matches_1x4(jobs, jobs["tmp"] / "train_2x2")


def _assert_matches_1x4(jobs, run):
  _results(jobs, "train_1x4")
  tmp = jobs["tmp"]
  runs = [run, tmp / "train_1x4"]
  summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
  assert [r["round"] for r in summaries[0]["rounds"]] == [0, 1, 2]
  assert summaries[0]["rounds"][1]["stats"]["round/train_pairs"] > 0  # the round trained on pairs
  _assert_close_tree(summaries[0], summaries[1])
  _assert_same_pool(runs, [0, 1, 2])
  for step in (1, 2):  # checkpoint_keep = 2
    _assert_close_params(runs, step)


def test_online_rloo_on_2x2_processes_matches_1x4(jobs):
  _results(jobs, "online_2x2", "online_1x4")
  tmp = jobs["tmp"]
  runs = [tmp / "online_2x2", tmp / "online_1x4"]
  summaries = [json.loads((run / "summary.json").read_text()) for run in runs]
  online = summaries[0]["rounds"][-1]
  assert online["round"] == "online" and online["step"] == 6 and online["generation"] == 2
  assert online["stats"]["train/zero_variance_groups"] < 1  # the steps had an RLOO signal
  # Six RLOO steps compound the rounding differences a little more than one offline round.
  _assert_close_tree(summaries[0], summaries[1], rel=1e-3)
  _assert_same_pool(runs, [0, 1, 2])  # the creator ran after steps 3 and 6
  for step in (3, 6):  # the whole train state: params, AdamW moments, step, reference
    _assert_close_params(runs, step)


def test_a_reward_model_trains_on_two_processes_and_process_0_alone_writes(jobs):
  code, output = jobs["rm_2x2"].result()
  assert code == 0, output[-4000:]
  workdir = jobs["tmp"] / "rm_2x2"
  figures = json.loads((workdir / "reward_model_train.json").read_text())
  assert figures["steps"] == 6 and figures["reload_equal"] and np.isfinite(figures["loss_last"])
  assert json.loads((workdir / "reward_model" / "reward_model.json").read_text())["model_name"] == "tiny"
  # One report, from process 0; both processes trained (the run ends only when both finish).
  assert any("reloaded with identical scores" in line for line in _lines(output, 0))
  assert not any("reloaded with identical scores" in line for line in _lines(output, 1))
