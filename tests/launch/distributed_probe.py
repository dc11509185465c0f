"""One process of a small multi-process job (run by test_local_multihost.py through launch/local_multihost.py).

It joins the distributed system from the EVA_* variables the launcher sets, shards a global array
over every process's devices, computes on it, gathers the global result on each host, draws a
progress bar (explicitly enabled: only process 0 may show it) and prints one JSON line of what it saw.
"""

import json

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np
import tqdm

from eva_jax.parallel import distributed
from eva_jax.parallel import mesh as mesh_lib

GLOBAL_ROWS = 8


def global_input() -> np.ndarray:
  return np.arange(GLOBAL_ROWS * 3, dtype=np.float32).reshape(GLOBAL_ROWS, 3)


def main() -> None:
  joined = distributed.initialize(distributed.settings_from())
  mesh = mesh_lib.make_mesh({"data": -1})
  rows = NamedSharding(mesh, P(mesh_lib.AXES[0]))
  x = jax.device_put(global_input(), rows)  # every process passes the same global value
  y = jax.jit(lambda a: a * 2 + a.sum(), out_shardings=rows)(x)
  value = distributed.to_host(y)
  with tqdm.tqdm(total=3, desc="probe bar", disable=False) as bar:
    bar_disabled = bar.disable  # read before close(), which sets it
    bar.update(3)
  distributed.barrier("probe_done")
  report = {
    "joined": joined,
    "process": jax.process_index(),
    "processes": jax.process_count(),
    "devices": jax.device_count(),
    "local_devices": jax.local_device_count(),
    "fully_addressable": y.is_fully_addressable,
    "main": distributed.is_main_process(),
    "value": value.tolist(),
    "bar_disabled": bar_disabled,
  }
  print("PROBE " + json.dumps(report), flush=True)


if __name__ == "__main__":
  main()
