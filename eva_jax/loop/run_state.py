"""Run checkpoints with orbax: params plus a small JSON of where the run stands.

Step k of the checkpoint manager is "round k finished" (0 = the warm start finished). The JSON
holds the round, the pool generation the next round starts from, and the config the run was
started with, so a resumed run continues exactly where the last finished round left it and a
config that changed in a field that matters is refused.
"""

from collections.abc import Mapping

from etils import epath
import jax
import orbax.checkpoint as ocp

# Fields whose change makes a stored run a different experiment.
PINNED_FIELDS = ("seed", "model.name", "model.param_dtype", "solver.loss", "loop.mode", "creator.task")


class RunCheckpoints:
  """Orbax `CheckpointManager` over `<workdir>/checkpoints`, keeping the last `keep` steps."""

  def __init__(self, workdir: epath.PathLike, keep: int):
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
    self.manager.save(
      step, args=ocp.args.Composite(params=ocp.args.StandardSave(tree), meta=ocp.args.JsonSave(dict(meta)))
    )
    self.manager.wait_until_finished()

  def restore(self, step: int, abstract_params) -> tuple[dict, dict]:
    """(tree, meta) of `step`; `abstract_params` carries the target shapes, dtypes and shardings."""
    restored = self.manager.restore(
      step,
      args=ocp.args.Composite(params=ocp.args.StandardRestore(abstract_params), meta=ocp.args.JsonRestore()),
    )
    return restored["params"], restored["meta"]

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
