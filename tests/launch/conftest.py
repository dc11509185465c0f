"""Subprocess jobs for the launch tests: started together, because each spends most of its time
importing gemma and TensorFlow on a shared CPU; each test waits only for the jobs it needs."""

import os
import signal
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCHER = os.path.join(ROOT, "launch", "local_multihost.py")
JOB_TIMEOUT_S = 900  # generous: the machine is shared with other test runs

# quickstart run small enough for CPU tests: a short warm start that leaves some reward spread, so
# the round has DPO pairs; one round; a few held-out prompts.
TRAIN_FLAGS = (
  "--config.loop.rounds=1",
  "--config.loop.warmstart_steps=60",
  "--config.loop.warmstart_batch_size=16",
  "--config.pool.num_seeds=16",
  "--config.eval.per_bucket=1",
  "--config.solver.batch_size=8",
  "--config.loop.num_samples=4",
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


def launch(name, tmp, processes, devices, *args, module=None) -> Job:
  """`launch/local_multihost.py` with P processes of D devices running eva_jax.main (or `module`)."""
  argv = [LAUNCHER, f"--processes={processes}", f"--devices={devices}", f"--timeout={JOB_TIMEOUT_S - 60}"]
  argv += [f"--module={module}"] if module else []
  return Job([*argv, "--", *args], tmp / f"{name}.log")


@pytest.fixture(scope="session")
def start_job():
  """`launch(name, tmp, processes, devices, *args, module=None) -> Job`, for jobs a test starts itself."""
  return launch


@pytest.fixture(scope="session")
def train_flags():
  return TRAIN_FLAGS


@pytest.fixture(scope="session")
def jobs(tmp_path_factory):
  """The multi-process jobs, all started at once; workdirs are `<tmp>/<name>`."""
  tmp = tmp_path_factory.mktemp("launch_jobs")
  quick = ("--config=configs/quickstart.py",)
  started = {
    "probe_2x2": launch("probe_2x2", tmp, 2, 2, module="tests.launch.distributed_probe"),
    "check_2x2": launch("check_2x2", tmp, 2, 2, *quick, f"--workdir={tmp / 'check_2x2'}", *CHECK_FLAGS),
    "check_1x4": launch("check_1x4", tmp, 1, 4, *quick, f"--workdir={tmp / 'check_1x4'}", *CHECK_FLAGS),
    "train_2x2": launch("train_2x2", tmp, 2, 2, *quick, f"--workdir={tmp / 'train_2x2'}", *TRAIN_FLAGS),
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
  yield started
  for job in started.values():
    if isinstance(job, Job):
      job.stop()
