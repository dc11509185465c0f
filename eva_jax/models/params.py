"""Params: sharded initialisation, official Gemma checkpoints, and our own orbax checkpoints.

Params are the inner `params` dict of the gemma module (apply with `{"params": params}`). Full
params never sit on one device: initialisation runs under `jit` with the target shardings, and
checkpoints are restored straight into them.
"""

from etils import epath
import flax
from gemma import gm
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from eva_jax import state_files
from eva_jax.models import architectures
from eva_jax.models import checksum
from eva_jax.models import hf_import
from eva_jax.parallel import partition


def abstract_params(model: gm.nn.Transformer):
  """`ShapeDtypeStruct` tree of the model's params (no allocation)."""
  dummy_tokens = jax.ShapeDtypeStruct((1, 8), jnp.int32)
  return jax.eval_shape(lambda rng, t: model.init(rng, t)["params"], jax.random.key(0), dummy_tokens)


def shardings_for(model: gm.nn.Transformer, mesh, rules=partition.DEFAULT_RULES):
  """The `NamedSharding` tree for `model`'s params on `mesh`."""
  return partition.param_shardings(abstract_params(model), mesh, rules, embed_dim=model.config.embed_dim)


def init_params(model: gm.nn.Transformer, rng: jax.Array, shardings):
  """Randomly initialised params, created directly in their shards."""
  tokens = jnp.zeros((1, 8), jnp.int32)
  init = jax.jit(lambda r: model.init(r, tokens)["params"], out_shardings=shardings)
  return init(rng)


def sharded_target(abstract, shardings):
  """Restore targets: orbax reads every array directly into its shard, in the model's dtype."""
  return jax.tree.map(
    lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
    abstract,
    shardings,
  )


def _check_structure(loaded, expected, source: str) -> None:
  got = flax.traverse_util.flatten_dict(loaded, sep="/")
  want = flax.traverse_util.flatten_dict(expected, sep="/")
  missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
  if missing or extra:
    raise ValueError(
      f"{source} does not match the model: missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
      f"unexpected {extra[:5]}{'...' if len(extra) > 5 else ''} (wrong model.name?)"
    )
  for path, leaf in want.items():
    if tuple(got[path].shape) != tuple(leaf.shape):
      raise ValueError(
        f"{source}: param {path} has shape {tuple(got[path].shape)}, model expects {tuple(leaf.shape)}"
      )


def load_gemma_checkpoint(path: epath.PathLike, model: gm.nn.Transformer, shardings, *, name: str):
  """Loads a Gemma checkpoint of architecture `name` into `shardings`, in the model's param dtype.

  Reads a Hugging Face model directory (`config.json` + safetensors, `hf_import`) or the gemma
  library's orbax format (any layout it reads), told apart by content. Raises FileNotFoundError /
  ValueError with the path when the checkpoint is missing or belongs to another architecture.
  """
  path = epath.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"Gemma checkpoint {path} does not exist")
  expected = abstract_params(model)
  if hf_import.is_hf_directory(path):
    family = architectures.ARCHITECTURES[name].family
    return hf_import.load(path, model, shardings, family=family, name=name, abstract=expected)
  try:  # The gemma loader maps flat/nested/stacked layouts onto the model's tree.
    params = gm.ckpts.load_params(path, params=sharded_target(expected, shardings), donate=False)
  except (KeyError, ValueError) as e:
    raise ValueError(
      f"Gemma checkpoint {path} does not match model with {model.config.num_layers} layers: {e}"
    ) from e
  _check_structure(params, expected, f"Gemma checkpoint {path}")
  return params


def checksum_path(path: epath.PathLike) -> epath.Path:
  """Where `save_params(path, ...)` writes the checksum of what it saved: beside the directory."""
  path = epath.Path(path)
  return path.parent / f"{path.name}.checksum.json"


def save_params(path: epath.PathLike, params) -> None:
  """Writes params with orbax (atomically: a half-written checkpoint is never read back), then their
  checksum beside them (`checksum_path`), which `restore_params` checks."""
  sums = checksum.tree_checksum(params)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(epath.Path(path), params)
  checkpointer.wait_until_finished()
  if jax.process_index() == 0:
    state_files.write_json(checksum_path(path), sums)


def restore_params(path: epath.PathLike, model: gm.nn.Transformer, shardings):
  """Reads params written by `save_params` straight into `shardings`.

  Raises CheckpointDamaged (a ValueError) when they do not match the checksum saved beside them
  or hold NaN/inf (a directory saved without a checksum is checked for NaN/inf only).
  """
  path = epath.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"params checkpoint {path} does not exist")
  expected = abstract_params(model)
  what = f"params checkpoint {path}"
  try:
    params = ocp.StandardCheckpointer().restore(path, sharded_target(expected, shardings))
  except (OSError, ValueError, RuntimeError) as error:
    raise checksum.CheckpointDamaged(f"{what} does not read: {str(error).splitlines()[0][:300]}") from error
  _check_structure(params, expected, what)
  sums = checksum_path(path)
  checksum.verify(params, state_files.read_json(sums) if sums.exists() else None, what)
  return params
