"""Run checkpoints with orbax: params plus a small JSON of where the run stands.

Step k of the checkpoint manager is "round k finished" (0 = the warm start finished). The JSON
holds the round, the pool generation the next round starts from, and the config the run was
started with, so a resumed run continues exactly where the last finished round left it and a
config that changed in a field that matters is refused.

Every save also stores the checksum of its arrays (`models.checksum`) in the JSON; a restore
checks it. `restore_verified` resumes from the newest step that verifies: a damaged newer step
(flipped bytes, a truncated file, NaN in the params) is named in one line and moved to
`<workdir>/checkpoints_damaged/`, so it is neither trained on nor garbage-collected in place of a
good one (orbax deletes the oldest steps only when a newer one is saved).
"""

from collections.abc import Callable
from collections.abc import Mapping
import sys

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
    damaged: list[tuple[int, str]] = []
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        meta = self.meta(step)
      except Exception as error:  # noqa: BLE001  (unreadable JSON: damage, whatever the library raises)
        damaged.append((step, f"its metadata does not read ({type(error).__name__}: {str(error)[:200]})"))
        continue
      check(meta)
      try:
        tree, meta = self.restore(step, target(meta))
      except checksum_lib.CheckpointDamaged as error:
        damaged.append((step, str(error)))
        continue
      except Exception as error:  # noqa: BLE001  (a decoding error of the storage library)
        damaged.append(
          (step, f"its arrays do not read ({type(error).__name__}: {str(error).splitlines()[0][:200]})")
        )
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

  def _quarantine(self, step: int, reason: str, good: int) -> None:
    target = self.directory.parent / "checkpoints_damaged" / str(step)
    print(f"{reason}; moved to {target}, resuming from checkpoint {good}", file=sys.stderr, flush=True)
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
