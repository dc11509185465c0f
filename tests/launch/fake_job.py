"""A stand-in process for the launcher's own tests (no JAX): reports its environment, then sleeps or fails.

    python -m tests.launch.fake_job [--fail-rank=R --code=C] [--kill-rank=K] [--sleep=S]

Prints `ENV <json>` with the variables the launcher sets, then: the process whose EVA_PROCESS_ID is
R exits with status C at once, the one that is K kills itself with SIGKILL; the others sleep S
seconds and print `finished`.
"""

import argparse
import json
import os
import signal
import sys
import time

REPORTED = ("EVA_COORDINATOR_ADDRESS", "EVA_NUM_PROCESSES", "EVA_PROCESS_ID", "JAX_PLATFORMS", "XLA_FLAGS")


def main() -> int:
  parser = argparse.ArgumentParser()
  parser.add_argument("--fail-rank", type=int, default=-1)
  parser.add_argument("--code", type=int, default=1)
  parser.add_argument("--kill-rank", type=int, default=-1)
  parser.add_argument("--sleep", type=float, default=0.0)
  opts = parser.parse_args()
  print("ENV " + json.dumps({k: os.environ.get(k) for k in REPORTED}), flush=True)
  if int(os.environ["EVA_PROCESS_ID"]) == opts.kill_rank:
    os.kill(os.getpid(), signal.SIGKILL)
  if int(os.environ["EVA_PROCESS_ID"]) == opts.fail_rank:
    print("failing", flush=True)
    return opts.code
  time.sleep(opts.sleep)
  print("finished", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
