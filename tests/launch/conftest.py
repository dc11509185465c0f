"""Subprocess jobs for the launch tests: started together, because each spends most of its time
importing gemma and TensorFlow on a shared CPU; each test waits only for the jobs it needs."""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from eva_jax.rewards import server as server_lib
from eva_jax.rewards import task_source
from eva_jax.tasks import get_task
from tests.creator import conftest as llm_stub
from tests.hang_guard import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCHER = os.path.join(ROOT, "launch", "local_multihost.py")
JOB_TIMEOUT_S = HANG_GUARD_S  # under a loaded suite a 2x2 job took over 840 s

# quickstart run small enough for CPU tests: a short warm start from random init that leaves some
# graded reward spread, so the rounds have DPO pairs; two rounds (the resume test stops a run between
# them); a few held-out prompts. Random init, not the shipped base: these tests compare processes
# (2x2 vs 1x4) to 1e-4, and the base answers held-out prompts with near-tied logits that float
# rounding of another device layout can flip; the graded reward keeps pairs without exact answers.
BARELY_TRAINED = (
  "--config.model.init=random",
  "--config.reward.task=addition_lsb",
  "--config.loop.min_chosen_reward=-inf",
)
TRAIN_FLAGS = (
  "--config=configs/quickstart.py",
  *BARELY_TRAINED,
  "--config.loop.rounds=2",
  "--config.loop.warmstart_steps=60",
  "--config.loop.warmstart_batch_size=16",
  "--config.pool.num_seeds=16",
  "--config.eval.per_bucket=1",
  "--config.solver.batch_size=8",
  "--config.loop.num_samples=4",
)
# The online (RLOO) quickstart in small: 6 steps of 4 prompts x 4 samples, the creator and a
# checkpoint every 3 steps.
ONLINE_FLAGS = (
  "--config=configs/quickstart_rloo.py",
  *BARELY_TRAINED,
  "--config.loop.steps=6",
  "--config.loop.creator_every_steps=3",
  "--config.loop.checkpoint_every_steps=3",
  "--config.loop.warmstart_steps=60",
  "--config.loop.warmstart_batch_size=16",
  "--config.pool.num_seeds=16",
  "--config.eval.per_bucket=1",
  "--config.solver.batch_size=16",
)
CHECK_FLAGS = ("--mode=check", "--config.mesh.shape.data=2", "--config.mesh.shape.fsdp=2")


class Job:
  """A launcher run in the background; `result()` waits and returns (exit status, output)."""

  def __init__(self, args, log_path):
    self.log_path = log_path
    self._log = open(log_path, "w")  # noqa: SIM115 - closed in result()/stop()
    self.proc = subprocess.Popen(
      [sys.executable, *args], cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
    )

  def result(self, timeout=JOB_TIMEOUT_S) -> tuple[int, str]:
    try:
      code = self.proc.wait(timeout)
    except subprocess.TimeoutExpired:
      self.stop()
      raise
    self._log.close()
    with open(self.log_path) as f:
      return code, f.read()

  def stop(self) -> None:
    if self.proc.poll() is None:
      self.proc.send_signal(signal.SIGTERM)  # the launcher stops its processes, then exits
      try:
        self.proc.wait(30)
      except subprocess.TimeoutExpired:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
    self._log.close()


def pid_of(log_path, process: int) -> int | None:
  """The pid the launcher logged for `process` ("[launch] process <i>: pid <pid>"), if logged yet."""
  with open(log_path) as f:
    found = re.search(rf"^\[launch\] process {process}: pid (\d+)$", f.read(), re.MULTILINE)
  return int(found.group(1)) if found else None


def summary_has_round(workdir, index: int):
  """`ready()`: whether `<workdir>/summary.json` (written atomically by process 0) lists round `index`
  as checkpointed. A round's entry is written before its checkpoint and completed with the checkpoint's
  time after it commits; round 0's entry is written after its checkpoint."""

  def committed(entry: dict) -> bool:
    return entry.get("round") == index and (index == 0 or "time/checkpoint" in entry.get("stats", {}))

  def ready() -> bool:
    path = workdir / "summary.json"
    if not path.exists():
      return False
    return any(committed(r) for r in json.loads(path.read_text())["rounds"])

  ready.description = f"round {index} checkpointed in {workdir / 'summary.json'}"
  return ready


class KillAndResume:
  """A launcher job whose process `victim` gets `sig` (SIGKILL, or SIGTERM: a preemption notice to
  one host) as soon as `ready()`; when the launcher has exited, the same command is started again on
  the same workdir (the resume). A thread does the watching, so the job runs from the start of the
  session like the others."""

  def __init__(self, name, tmp, processes, devices, args, *, ready, victim, sig=signal.SIGKILL):
    self.relaunch = lambda: launch(f"{name}_resumed", tmp, processes, devices, *args)
    self.ready, self.victim, self.sig = ready, victim, sig
    self.first = launch(name, tmp, processes, devices, *args)
    self.second = None
    self.first_result = None
    self.error = None
    self.killed_after_s = None
    self._start = time.monotonic()
    self._thread = threading.Thread(target=self._watch, daemon=True)
    self._thread.start()

  def _watch(self):
    try:
      deadline = time.monotonic() + JOB_TIMEOUT_S
      while not self.ready():
        if self.first.proc.poll() is not None:
          code, output = self.first.result()
          self.error = f"the job ended (status {code}) before {self.ready.description}:\n{output[-4000:]}"
          return
        if time.monotonic() > deadline:
          self.error = f"no {self.ready.description} after {JOB_TIMEOUT_S}s"
          return
        time.sleep(0.1)
      pid = pid_of(self.first.log_path, self.victim)
      os.kill(pid, self.sig)
      self.killed_after_s = time.monotonic() - self._start
      self.first_result = self.first.result()
      self.second = self.relaunch()
    except Exception as e:  # reported by results()
      self.error = f"{type(e).__name__}: {e}"

  def results(self, timeout=JOB_TIMEOUT_S):
    """((status, output) of the killed run, (status, output) of the resumed run)."""
    self._thread.join(timeout)
    if self.error:
      raise AssertionError(self.error)
    return self.first_result, self.second.result(timeout)

  def stop(self) -> None:
    self.first.stop()
    if self.second is not None:
      self.second.stop()


class CountingSource:
  """The addition task's reward source, recording the prompts of every batch it is asked to score."""

  def __init__(self):
    self.source = task_source.TaskRewardSource(get_task("addition"))
    self.batches = []
    self.lock = threading.Lock()

  def score(self, prompts, responses):
    with self.lock:
      self.batches.append(list(prompts))
    return self.source.score(prompts, responses)

  def close(self):
    self.source.close()


@contextlib.contextmanager
def reward_server():
  """Our reward server (eva_jax/rewards/server.py) for a CountingSource on 127.0.0.1; yields it."""
  with server_lib.serving_in_thread(server_lib.make_server(CountingSource(), kind="task")) as server:
    yield server


def closed_port_url() -> str:
  """A URL on 127.0.0.1 where nothing listens."""
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
  return f"http://127.0.0.1:{port}/score"


def launch(name, tmp, processes, devices, *args, module=None) -> Job:
  """`launch/local_multihost.py` with P processes of D devices running eva_jax.main (or `module`)."""
  argv = [LAUNCHER, f"--processes={processes}", f"--devices={devices}", f"--timeout={JOB_TIMEOUT_S - 60}"]
  argv += [f"--module={module}"] if module else []
  return Job([*argv, "--", *args], tmp / f"{name}.log")


def _train_2x2_interrupted(name, tmp, sig) -> KillAndResume:
  """The small quickstart on 2 x 2 processes; process 1 gets `sig` once round 1 is checkpointed."""
  args = (f"--workdir={tmp / name}", *TRAIN_FLAGS)
  return KillAndResume(name, tmp, 2, 2, args, ready=summary_has_round(tmp / name, 1), victim=1, sig=sig)


@pytest.fixture(scope="session")
def jobs(tmp_path_factory):
  """The multi-process jobs, all started at once; workdirs are `<tmp>/<name>`."""
  tmp = tmp_path_factory.mktemp("launch_jobs")
  quick = ("--config=configs/quickstart.py",)
  stack = contextlib.ExitStack()
  server = stack.enter_context(reward_server())
  llm = stack.enter_context(llm_stub.serving())  # an OpenAI-compatible endpoint for the LLM evolver
  started = {
    "probe_2x2": launch("probe_2x2", tmp, 2, 2, module="tests.launch.distributed_probe"),
    "check_2x2": launch("check_2x2", tmp, 2, 2, *quick, f"--workdir={tmp / 'check_2x2'}", *CHECK_FLAGS),
    "check_1x4": launch("check_1x4", tmp, 1, 4, *quick, f"--workdir={tmp / 'check_1x4'}", *CHECK_FLAGS),
    "train_1x4": launch("train_1x4", tmp, 1, 4, f"--workdir={tmp / 'train_1x4'}", *TRAIN_FLAGS),
    "online_2x2": launch("online_2x2", tmp, 2, 2, f"--workdir={tmp / 'online_2x2'}", *ONLINE_FLAGS),
    "online_1x4": launch("online_1x4", tmp, 1, 4, f"--workdir={tmp / 'online_1x4'}", *ONLINE_FLAGS),
    # Killed and resumed (process 1 is SIGKILLed once the summary shows round 1 checkpointed;
    # then the same command runs again), and still equal to train_1x4, which runs undisturbed.
    "train_2x2": _train_2x2_interrupted("train_2x2", tmp, signal.SIGKILL),
    # Process 1 alone gets SIGTERM once round 1 is checkpointed: both stop at the same safe point
    # (75), and the rerun ends equal to train_1x4.
    "term_2x2": _train_2x2_interrupted("term_2x2", tmp, signal.SIGTERM),
    "reward_2x2": launch(
      "reward_2x2",
      tmp,
      2,
      2,
      f"--url={server.url}",
      f"--down_url={closed_port_url()}",
      f"--llm_url={llm.base_url}",
      module="tests.launch.reward_probe",
    ),
    # A reward model trained on 2 processes x 2 devices (each feeds its own devices' rows).
    "rm_2x2": launch(
      "rm_2x2",
      tmp,
      2,
      2,
      "--config=configs/reward_model.py",
      f"--workdir={tmp / 'rm_2x2'}",
      "--mode=train_reward_model",
      "--config.reward_model.steps=6",
      "--config.reward_model.train_pairs=64",
      "--config.reward_model.eval_pairs=16",
      "--config.reward_model.batch_size=8",
      "--config.reward_model.warmup_steps=1",
    ),
    # The memory plan for 64 v5e chips with tensor=8: shapes only, one plain process.
    "plan": Job(
      [
        "-m",
        "eva_jax.main",
        "--config=configs/gemma2_9b.py",
        f"--workdir={tmp / 'plan'}",
        "--mode=plan",
        "--plan_topology=v5e-64",
        "--config.mesh.shape.tensor=8",
      ],
      tmp / "plan.log",
    ),
  }
  started["tmp"] = tmp
  started["reward_server"] = server
  started["llm_endpoint"] = llm
  yield started
  for job in started.values():
    if isinstance(job, Job | KillAndResume):
      job.stop()
  stack.close()
