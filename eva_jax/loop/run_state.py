"""Run checkpoints with orbax: params plus a small JSON of where the run stands.

Step k of the checkpoint manager is "round k finished" (0 = the warm start finished). The JSON
holds the round, the pool generation the next round starts from, and the config the run was
started with, so a resumed run continues exactly where the last finished round left it and a
config that changed in a field that matters is refused.

Every save also stores the checksum of its arrays (`models.checksum`) in the JSON; a restore
checks it. `restore_verified` resumes from the newest step that verifies: a damaged newer step
(flipped bytes, a truncated file, NaN in the params) is named in one line (the step, its directory
and the file or array that does not read) and moved to `<workdir>/checkpoints_damaged/`, so it is
neither trained on nor garbage-collected in place of a good one (orbax deletes the oldest steps
only when a newer one is saved). The tracebacks orbax's abandoned reads print afterwards are
dropped (`_quiet_abandoned_reads`).
"""

from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
import contextlib
import json
import logging
import os
import sys
import types

from etils import epath
import jax
import orbax.checkpoint as ocp

from eva_jax.models import checksum as checksum_lib
from eva_jax.parallel import distributed

# Fields whose change makes a stored run a different experiment.
PINNED_FIELDS = ("seed", "model.name", "model.param_dtype", "solver.loss", "loop.mode", "creator.task")


class RunCheckpoints:
  """Orbax `CheckpointManager` over `<workdir>/checkpoints`, keeping the last `keep` steps."""

  def __init__(self, workdir: epath.PathLike, keep: int):
    self.keep = keep
    self.directory = epath.Path(workdir) / "checkpoints"
    self.manager = ocp.CheckpointManager(
      self.directory, options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True)
    )

  def latest(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, tree, meta: Mapping) -> None:
    """Writes step `step` (collectively on every host) and waits until it is complete on disk.

    `tree` is the params (offline) or the state dict of the whole TrainState (online).
    """
    meta = {**meta, "checksum": checksum_lib.tree_checksum(tree)}
    self.manager.save(
      step, args=ocp.args.Composite(params=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(meta))
    )
    self.manager.wait_until_finished()

  def restore(self, step: int, abstract_params) -> tuple[dict, dict]:
    """(tree, meta) of `step`; `abstract_params` carries the target shapes, dtypes and shardings.

    Raises CheckpointDamaged when the arrays do not match the checksum saved with them (steps
    written before checksums were saved are checked for NaN/inf only).
    """
    restored = self.manager.restore(
      step,
      args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract_params), meta=ocp.args.JsonRestore()),
    )
    what = f"checkpoint {self.directory / str(step)}"
    checksum_lib.verify(restored["params"], restored["meta"].get("checksum"), what)
    return restored["params"], restored["meta"]

  def restore_verified(
    self, target: Callable[[dict], object], check: Callable[[dict], None] = lambda meta: None
  ) -> tuple[int, object, dict] | None:
    """(step, tree, meta) of the newest step that restores and verifies; None when there are no steps.

    `target(meta)` gives the restore target of a step (abstract params, or None for numpy);
    `check(meta)` may refuse a step for reasons that are not damage (a changed config): its error
    propagates. Damaged newer steps are moved to `checkpoints_damaged/` once a good one is found;
    when none verifies, nothing is moved and the error names every step.
    """
    _quiet_abandoned_reads()  # before the first read: the reads of a failing one print as it fails
    damaged: list[tuple[int, str]] = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        with _orbax_errors_held():
          meta = self.meta(step)
      except Exception as error:  # noqa: BLE001  (unreadable JSON: damage, whatever the library raises)
        damaged.append((step, self._unreadable(step, "its metadata does not read", error)))
        continue
      check(meta)
      try:
        with _orbax_errors_held():
          tree, meta = self.restore(step, target(meta))
      except checksum_lib.CheckpointDamaged as error:
        damaged.append((step, str(error)))
        continue
      except Exception as error:  # noqa: BLE001  (a decoding error of the storage library)
        damaged.append((step, self._unreadable(step, "its arrays do not read", error)))
        continue
      for bad, reason in damaged:
        self._quarantine(bad, reason, step)
      return step, tree, meta
    if damaged:
      raise checksum_lib.CheckpointDamaged(
        "no checkpoint in "
        + str(self.directory)
        + " verifies: "
        + "; ".join(f"step {s}: {r}" for s, r in damaged)
      )
    return None

  def prune(self, verified: int) -> list[int]:
    """Deletes steps older than the newest `keep` (orbax's retention), never `verified` or newer.

    A kill right after a save, before orbax removed the oldest step, would otherwise leave it forever
    when no later save follows (e.g. after the final round).
    """
    steps = sorted(self.manager.all_steps())
    extra = [s for s in steps[: max(len(steps) - self.keep, 0)] if s < verified]
    for step in extra:
      self.manager.delete(step)
    return extra

  def _unreadable(self, step: int, what: str, error: Exception) -> str:
    """One line for a step that does not read: its directory and the file or array at fault."""
    step_dir = self.directory / str(step)
    bad_json = _unparsable_json(step_dir)
    detail = f"{bad_json[0]} is cut short or not JSON" if bad_json else _innermost_message(error)
    return f"checkpoint {step_dir} is damaged: {what} ({detail})"

  def _quarantine(self, step: int, reason: str, good: int) -> None:
    target = self.directory.parent / "checkpoints_damaged" / str(step)
    print(
      f"eva_jax: warning: {reason}; moved to {target}, resuming from checkpoint {good}",
      file=sys.stderr,
      flush=True,
    )
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      if target.exists():
        target.rmtree()
      (self.directory / str(step)).rename(target)
    distributed.barrier(f"quarantine checkpoint {step}")
    self.manager.reload()

  def meta(self, step: int) -> dict:
    """Only the JSON part of `step` (what the run was doing), without reading any arrays."""
    return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def close(self) -> None:
    self.manager.close()


def pinned(flat_config: Mapping) -> dict:
  """The PINNED_FIELDS of a flattened config dict ({"model.name": ..., ...})."""
  return {k: flat_config.get(k) for k in PINNED_FIELDS}


def check_compatible(stored: Mapping, current: Mapping, *, force: bool = False) -> None:
  """Raises ValueError naming the fields where the stored run's pinned config differs."""
  changed = {k: (stored.get(k), current.get(k)) for k in PINNED_FIELDS if stored.get(k) != current.get(k)}
  if changed and not force:
    details = ", ".join(f"{k}: stored {a!r}, now {b!r}" for k, (a, b) in changed.items())
    raise ValueError(f"the workdir holds a run with a different config ({details}); use a new --workdir")


def abstract_like(params):
  """Restore targets shaped, typed and sharded like `params`."""
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), params)


# Orbax's files that hold JSON, by name (the rest are TensorStore's binary OCDBT files).
_JSON_FILES = ("_CHECKPOINT_METADATA", "_METADATA", "_sharding", "metadata", "process_0")


def _unparsable_json(step_dir: epath.Path) -> list[epath.Path]:
  """The JSON files of a step that do not parse: where a truncation shows as a bare JSON error."""
  bad = []
  for path in sorted(step_dir.iterdir()) if step_dir.is_dir() else []:
    if path.is_dir() and path.name != "d":  # `d/` holds TensorStore's data files
      bad += _unparsable_json(path)
    elif path.name in _JSON_FILES:
      try:
        json.loads(path.read_text())
      except (ValueError, UnicodeDecodeError):
        bad.append(path)
  return bad


def _innermost_message(error: BaseException) -> str:
  """The first line of the innermost cause of `error` that says something (at most 300 characters).

  Orbax wraps TensorStore's error ("Error reading <array> in OCDBT database at local file <dir>: ...")
  in one whose message is a pybind repr of the whole TensorStore spec; the spec TensorStore appends
  to its own messages (`[tensorstore_spec=...]`) is cut too.
  """
  chain = []
  while error is not None and error not in chain:
    chain.append(error)
    error = error.__cause__ or error.__context__
  for cause in reversed(chain):
    text = str(cause).split(" [tensorstore_spec=")[0].strip()
    first = text.splitlines()[0] if text else ""
    if first and "<bound method" not in first:
      return f"{type(cause).__name__}: {first[:300]}"
  return type(chain[0]).__name__


_ORBAX_DIR = os.path.dirname(ocp.__file__)


def _from_orbax(error: BaseException | None) -> bool:
  """Whether `error` (or its cause) was raised in orbax's code: an abandoned read of a failed restore."""
  seen = []
  while error is not None and error not in seen:
    seen.append(error)
    tb = error.__traceback__
    while tb is not None:
      if tb.tb_frame.f_code.co_filename.startswith(_ORBAX_DIR):
        return True
      tb = tb.tb_next
    error = error.__cause__ or error.__context__
  return False


def _loop_closed(error: BaseException | None) -> bool:
  """asyncio's "Event loop is closed" from `call_soon_threadsafe`: a TensorStore read finishing late."""
  if not isinstance(error, RuntimeError) or str(error) != "Event loop is closed":
    return False
  tb = error.__traceback__
  while tb is not None:
    if tb.tb_frame.f_code.co_name == "call_soon_threadsafe":
      return True
    tb = tb.tb_next
  return False


def _abandoned_read(unraisable) -> bool:
  code = unraisable.object.cr_code if isinstance(unraisable.object, types.CoroutineType) else None
  orbax_coroutine = code is not None and code.co_filename.startswith(_ORBAX_DIR)
  return orbax_coroutine or _loop_closed(unraisable.exc_value)


class _AbandonedReadLogs(logging.Filter):
  """Drops asyncio's "Task/Future exception was never retrieved" for reads of a failed restore."""

  def filter(self, record: logging.LogRecord) -> bool:
    message = str(record.msg)
    if "exception was never retrieved" not in message:
      return True
    error = record.exc_info[1] if record.exc_info else None
    return not (_from_orbax(error) or _ORBAX_DIR in message or "OCDBT database" in message)


class _HeldOrbaxErrors(logging.Filter):
  """Holds back the errors orbax logs (e.g. "Failed to json parse Metadata file: ..., file content: ...")."""

  def __init__(self):
    super().__init__()
    self.held: list[logging.LogRecord] = []

  def filter(self, record: logging.LogRecord) -> bool:
    if record.levelno >= logging.ERROR and record.pathname.startswith(_ORBAX_DIR):
      self.held.append(record)
      return False
    return True


@contextlib.contextmanager
def _orbax_errors_held() -> Iterator[None]:
  """While a step is read: orbax's error logs are dropped if the read fails (`restore_verified` reports
  the step in one line), and passed on as they were if it succeeds."""
  logger = logging.getLogger("absl")  # what orbax logs with (absl.logging)
  held = _HeldOrbaxErrors()
  logger.addFilter(held)
  try:
    yield
  finally:
    logger.removeFilter(held)
  for record in held.held:  # only reached when the read succeeded
    logger.handle(record)


def _quiet_abandoned_reads() -> None:
  """Silences the tracebacks of the reads a failed restore leaves running (installed before a resume).

  Orbax gives up at the first array that does not read; the reads of the others finish later, on
  TensorStore's threads, after orbax closed their event loop, and each prints a traceback: "Event
  loop is closed" and "Exception ignored in <coroutine ...>" (sys.unraisablehook), "Task exception
  was never retrieved" (the asyncio logger): hundreds of lines for a step `restore_verified` reports
  in one. Only those are dropped; any other unraisable exception or asyncio error still shows.
  """
  if not getattr(sys.unraisablehook, "eva_quiet", False):
    previous = sys.unraisablehook

    def hook(unraisable):
      if not _abandoned_read(unraisable):
        previous(unraisable)

    hook.eva_quiet = True
    sys.unraisablehook = hook
  asyncio_logger = logging.getLogger("asyncio")
  if not any(isinstance(f, _AbandonedReadLogs) for f in asyncio_logger.filters):
    asyncio_logger.addFilter(_AbandonedReadLogs())
