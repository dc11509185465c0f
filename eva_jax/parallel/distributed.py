"""Multi-process start-up: join the JAX distributed system before anything touches a device.

Every process of a multi-host run (TPU pod workers, GPU hosts, or several CPU processes on one
machine) calls `initialize(settings_from(...))` first; afterwards `jax.devices()` lists the devices
of all processes and one mesh spans them. Where the settings come from, flags first:

    --distributed         EVA_DISTRIBUTED          auto (default) | on | off
    --coordinator_address EVA_COORDINATOR_ADDRESS  host:port of process 0 (also JAX_COORDINATOR_ADDRESS)
    --num_processes       EVA_NUM_PROCESSES        processes in the run
    --process_id          EVA_PROCESS_ID           this process, 0 .. num_processes - 1

`off`: one process, never initialise. `on`: always initialise; settings left unset are detected by
JAX (a Cloud TPU pod worker or SLURM job knows its coordinator and rank: `launch/tpu.sh` uses this).
`auto`: initialise when explicit settings ask for more than one process or the environment shows a
multi-process cluster (TPU_WORKER_HOSTNAMES with several hosts, MEGASCALE_COORDINATOR_ADDRESS,
SLURM_NTASKS or OMPI_COMM_WORLD_SIZE above 1); otherwise a single process that initialises nothing.
CPU processes exchange data with gloo (`jax_cpu_collectives_implementation`), set before joining.

Only process 0 talks: after joining, every other process disables its tqdm progress bars
(`quiet_progress_bars`), and `run_on_main` lets process 0 alone do something with a side effect
(an HTTP request to a reward server) and hands its result to every process.
"""

from collections.abc import Callable
from collections.abc import Mapping
import dataclasses
import functools
import json
import os
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np
import tqdm

MODES = ("auto", "on", "off")
ENV_PREFIX = "EVA_"


@dataclasses.dataclass(frozen=True)
class Settings:
  mode: str = "auto"  # one of MODES
  coordinator_address: str | None = None  # "host:port" of process 0
  num_processes: int | None = None
  process_id: int | None = None


def _env_int(env: Mapping[str, str], name: str) -> int | None:
  value = env.get(name, "").strip()
  if not value:
    return None
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"{name}={value!r} is not an integer") from None


def settings_from(
  mode: str | None = None,
  coordinator_address: str | None = None,
  num_processes: int | None = None,
  process_id: int | None = None,
  env: Mapping[str, str] | None = None,
) -> Settings:
  """Settings from explicit values (flags), falling back to the EVA_* environment variables.

  Raises:
    ValueError: naming the setting when a value is malformed or inconsistent.
  """
  env = os.environ if env is None else env
  settings = Settings(
    mode=mode or env.get(f"{ENV_PREFIX}DISTRIBUTED", "").strip() or "auto",
    coordinator_address=coordinator_address
    or env.get(f"{ENV_PREFIX}COORDINATOR_ADDRESS", "").strip()
    or env.get("JAX_COORDINATOR_ADDRESS", "").strip()
    or None,
    num_processes=num_processes if num_processes is not None else _env_int(env, f"{ENV_PREFIX}NUM_PROCESSES"),
    process_id=process_id if process_id is not None else _env_int(env, f"{ENV_PREFIX}PROCESS_ID"),
  )
  if settings.mode not in MODES:
    raise ValueError(f"distributed mode {settings.mode!r} is not one of {list(MODES)}")
  if settings.num_processes is not None and settings.num_processes < 1:
    raise ValueError(f"num_processes must be >= 1, got {settings.num_processes}")
  if settings.process_id is not None:
    upper = settings.num_processes
    if settings.process_id < 0 or (upper is not None and settings.process_id >= upper):
      raise ValueError(f"process_id {settings.process_id} is outside 0 .. {(upper or 1) - 1}")
  return settings


def cluster_detected(env: Mapping[str, str] | None = None) -> bool:
  """Whether the environment shows a multi-process job JAX can join without explicit settings."""
  env = os.environ if env is None else env
  hosts = [h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h.strip()]
  sizes = [_env_int(env, name) or 1 for name in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE")]
  return len(hosts) > 1 or bool(env.get("MEGASCALE_COORDINATOR_ADDRESS")) or max(sizes) > 1


def should_initialize(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
  if settings.mode != "auto":
    return settings.mode == "on"
  if settings.num_processes is not None:
    return settings.num_processes > 1
  return settings.coordinator_address is not None or cluster_detected(env)


def initialize(settings: Settings) -> bool:
  """Joins the distributed system when `settings` call for it; returns whether it did.

  Must run before the first JAX computation or device query of the process.
  """
  if not should_initialize(settings):
    return False
  explicit = settings.num_processes is not None and settings.num_processes > 1
  if explicit and (settings.coordinator_address is None or settings.process_id is None):
    raise ValueError(
      f"{settings.num_processes} processes need a coordinator_address and a process_id for each process"
    )
  # CPU devices of different processes talk over gloo; harmless on TPU/GPU, where it is unused.
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
    coordinator_address=settings.coordinator_address,
    num_processes=settings.num_processes,
    process_id=settings.process_id,
  )
  if jax.process_index() != 0:
    quiet_progress_bars()
  logging.info(
    "joined the distributed system: process %d of %d, %d local / %d global devices",
    jax.process_index(),
    jax.process_count(),
    jax.local_device_count(),
    jax.device_count(),
  )
  return True


def is_main_process() -> bool:
  """True on process 0, the one that prints reports and writes shared files."""
  return jax.process_index() == 0


def report(*args) -> None:
  """Prints on process 0 only: every process runs the same loop, one of them talks."""
  if is_main_process():
    print(*args)


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (no-op for a single process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def to_host(tree):
  """`tree`'s arrays as NumPy arrays holding the *global* values, on every process.

  `np.asarray` of an array sharded over devices of other processes fails; such arrays are
  all-gathered first (a collective: every process must call this in the same order).
  """

  def fetch(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))

  return jax.tree.map(fetch, tree)


def quiet_progress_bars() -> None:
  """Disables every tqdm progress bar of this process, including bars created with `disable=False`.

  Process 0 shows the bars; the others would print the same bars again. tqdm reads `TQDM_DISABLE`
  only when it is first imported and lets an explicit `disable=` argument override it, so that
  variable alone cannot silence a process that has already imported tqdm (every eva_jax process has
  by the time it joins). This wraps `tqdm.std.tqdm.__init__` (the base of `tqdm.tqdm`, `tqdm.auto`
  and TFDS's bars) to force `disable=True`, and sets `TQDM_DISABLE=1` for child processes.
  Idempotent.
  """
  os.environ["TQDM_DISABLE"] = "1"
  init = tqdm.std.tqdm.__init__
  if getattr(init, "_eva_quiet", False):
    return

  @functools.wraps(init)
  def quiet_init(self, *args, **kwargs):
    kwargs["disable"] = True
    init(self, *args, **kwargs)

  quiet_init._eva_quiet = True
  tqdm.std.tqdm.__init__ = quiet_init


class MainProcessError(RuntimeError):
  """What `run_on_main` raises on the other processes when the function failed on process 0."""


_MESSAGE_BYTES = 2048  # of process 0's error message sent to the other processes


def _encode(message: str) -> np.ndarray:
  data = message.encode("utf-8", "replace")[:_MESSAGE_BYTES]
  return np.frombuffer(data.ljust(_MESSAGE_BYTES, b"\0"), np.uint8).astype(np.int32)


def _decode(codes: np.ndarray) -> str:
  return bytes(np.asarray(codes, np.uint8)).rstrip(b"\0").decode("utf-8", "replace")


def _as_int32(x: np.ndarray) -> np.ndarray:
  """`x`'s bytes as int32 words: the broadcast sums integers, so every bit pattern (NaN too) survives."""
  x = np.ascontiguousarray(x)
  if x.dtype.itemsize % 4:
    raise TypeError(f"run_on_main: dtype {x.dtype} is not a multiple of 4 bytes")
  return x.reshape(-1).view(np.int32)


def run_on_main(fn: Callable[[], np.ndarray], shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
  """`fn()` computed on process 0 only and sent to every process (bit for bit).

  For work with a side effect that must happen once per run, not once per host: an HTTP request
  to a reward server, say. Every process must call this at the same point with the same `shape`
  and `dtype` (a collective); `fn` must return an array of that shape. With one process it simply
  returns `fn()`. When `fn` raises on process 0 the error is re-raised there, and the others raise
  `MainProcessError` with its message, instead of waiting forever.
  """
  if jax.process_count() == 1:
    return np.asarray(fn(), dtype).reshape(shape)
  dtype = np.dtype(dtype)
  words = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize // 4
  # At least one word: nothing is broadcast as an empty array.
  value, error, status = np.zeros(max(words, 1), np.int32), None, np.zeros(1, np.int32)
  message = np.zeros(_MESSAGE_BYTES, np.int32)
  if is_main_process():
    try:
      result = np.asarray(fn(), dtype)
      if result.shape != tuple(shape):
        raise ValueError(f"run_on_main: fn returned shape {result.shape}, expected {tuple(shape)}")
      value = np.pad(_as_int32(result), (0, max(words, 1) - words))
    except Exception as e:  # sent to the others, then re-raised here
      error, status = e, np.ones(1, np.int32)
      message = _encode(f"{type(e).__name__}: {e}")
  value, status, message = multihost_utils.broadcast_one_to_all((value, status, message))
  if error is not None:
    raise error
  if int(status[0]):
    raise MainProcessError(f"process 0 failed: {_decode(message)}")
  return np.asarray(value, np.int32)[:words].view(dtype).reshape(shape).copy()


def run_on_main_json(fn: Callable[[], Any]) -> Any:
  """`fn()` (a JSON-serialisable value: strings, lists, dicts) computed on process 0 only and sent to
  every process; a collective like `run_on_main`, whose error handling it shares.

  Two broadcasts: the payload's byte length, then its bytes. With one process it returns `fn()`.
  """
  if jax.process_count() == 1:
    return fn()
  payload: dict[str, bytes] = {}

  def length() -> np.ndarray:
    payload["bytes"] = json.dumps(fn(), ensure_ascii=False).encode("utf-8")
    return np.array([len(payload["bytes"])], np.int32)

  size = int(run_on_main(length, (1,), np.int32)[0])
  words = max(-(-size // 4), 1)
  data = run_on_main(
    lambda: np.frombuffer(payload["bytes"].ljust(words * 4, b"\0"), np.int32), (words,), np.int32
  )
  return json.loads(bytes(data.view(np.uint8))[:size].decode("utf-8"))
