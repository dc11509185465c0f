"""Runs a multi-host job as P processes on this machine, each with D CPU devices (a pod in miniature).

    .venv/bin/python launch/local_multihost.py --processes=2 --devices=2 -- \
        --config=configs/quickstart.py --workdir=/tmp/eva_mh --mode=check

Everything after `--` goes to `python -m eva_jax.main` (or `--module`). Each process gets
`JAX_PLATFORMS=cpu`, `XLA_FLAGS=--xla_force_host_platform_device_count=D` and the distributed
settings `eva_jax.parallel.distributed` reads (EVA_COORDINATOR_ADDRESS=127.0.0.1:<free port>,
EVA_NUM_PROCESSES=P, EVA_PROCESS_ID=i); the processes exchange data over gloo. Output lines are
prefixed with `[p<i>]` as they arrive; the launcher's own lines start with `[launch]` (among them
`[launch] process <i>: pid <pid>` for each process it starts). When one process fails or is killed
the others are stopped (they would wait for it forever at the next collective); the exit status is
the first failure's (128 + N for a process killed by signal N, as a shell reports it), else 0.
Running the same command again on the same workdir resumes the run from its last checkpoint.
"""

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=\S+")


def free_port() -> int:
  """A TCP port that was free a moment ago (the coordinator binds it right after)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def process_env(base: dict, *, process_id: int, processes: int, devices: int, port: int) -> dict:
  """The environment of process `process_id`: CPU devices, its rank and the coordinator."""
  xla_flags = _DEVICE_COUNT_FLAG.sub("", base.get("XLA_FLAGS", "")).strip()
  return dict(
    base,
    JAX_PLATFORMS="cpu",
    XLA_FLAGS=f"{xla_flags} --xla_force_host_platform_device_count={devices}".strip(),
    EVA_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
    EVA_NUM_PROCESSES=str(processes),
    EVA_PROCESS_ID=str(process_id),
    PYTHONUNBUFFERED="1",  # lines arrive as they are printed, not when a buffer fills
  )


def _pump(index: int, stream, lock: threading.Lock) -> None:
  for line in iter(stream.readline, ""):
    with lock:
      sys.stdout.write(f"[p{index}] {line}")
      sys.stdout.flush()
  stream.close()


def exit_status(returncode: int) -> int:
  """A child's exit status as a shell reports it: 128 + N when signal N killed it (Popen says -N)."""
  return 128 - returncode if returncode < 0 else returncode


def _describe(returncode: int) -> str:
  if returncode < 0:
    try:
      return f"was killed by {signal.Signals(-returncode).name}"
    except ValueError:
      return f"was killed by signal {-returncode}"
  return f"exited with {returncode}"


def _stop(procs, grace_s: float = 10.0) -> None:
  """SIGTERM to each process still running (each leads its own group), SIGKILL after `grace_s`."""
  for proc in procs:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGTERM)
  deadline = time.monotonic() + grace_s
  for proc in procs:
    try:
      proc.wait(max(deadline - time.monotonic(), 0.1))
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()


def run(args: list[str], *, processes: int, devices: int, module: str, timeout_s: float | None) -> int:
  """Starts the processes, streams their output and returns the job's exit status."""
  port = free_port()
  lock = threading.Lock()
  procs, pumps = [], []
  for i in range(processes):
    env = process_env(os.environ, process_id=i, processes=processes, devices=devices, port=port)
    proc = subprocess.Popen(
      [sys.executable, "-m", module, *args],
      cwd=ROOT,
      env=env,
      stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT,
      text=True,
      start_new_session=True,  # its own process group: stopping it also stops anything it started
    )
    procs.append(proc)
    print(f"[launch] process {i}: pid {proc.pid}", flush=True)
    pumps.append(threading.Thread(target=_pump, args=(i, proc.stdout, lock), daemon=True))
    pumps[-1].start()
  deadline = None if timeout_s is None else time.monotonic() + timeout_s
  status = 0
  try:
    while None in [p.poll() for p in procs]:  # a list, not any(): every process must be polled
      failed = [p for p in procs if p.returncode not in (None, 0)]
      if failed:
        status = exit_status(failed[0].returncode)
        print(
          f"[launch] process {procs.index(failed[0])} {_describe(failed[0].returncode)}; stopping the others",
          flush=True,
        )
        break
      if deadline is not None and time.monotonic() > deadline:
        status = 124
        print(f"[launch] timed out after {timeout_s:.0f}s; stopping all processes", flush=True)
        break
      time.sleep(0.2)
  finally:
    _stop(procs)
  for pump in pumps:
    pump.join(timeout=5)
  if status == 0:
    status = next((exit_status(p.returncode) for p in procs if p.returncode != 0), 0)
  return status


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--processes", type=int, default=2, help="processes to start (P)")
  parser.add_argument("--devices", type=int, default=2, help="CPU devices per process (D)")
  parser.add_argument("--module", default="eva_jax.main", help="python -m MODULE each process runs")
  parser.add_argument("--timeout", type=float, default=None, help="seconds before all processes are stopped")
  parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the arguments of MODULE")
  opts = parser.parse_args(argv)
  args = opts.args[1:] if opts.args[:1] == ["--"] else opts.args
  if opts.processes < 1 or opts.devices < 1:
    parser.error("--processes and --devices must be >= 1")
  # SIGTERM unwinds like Ctrl-C, so the processes (each in its own session) are stopped too.
  signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
  return run(args, processes=opts.processes, devices=opts.devices, module=opts.module, timeout_s=opts.timeout)


if __name__ == "__main__":
  sys.exit(main())
