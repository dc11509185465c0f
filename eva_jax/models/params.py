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

from eva_jax.parallel import partition


def abstract_params(model: gm.nn.Transformer):
  """`ShapeDtypeStruct` tree of the model's params (no allocation)."""
  dummy_tokens = jax.ShapeDtypeStruct((1, 8), jnp.int32)
  return jax.eval_shape(lambda rng, t: model.init(rng, t)["params"], jax.random.key(0), dummy_tokens)


def shardings_for(model: gm.nn.Transformer, mesh, rules=partition.DEFAULT_RULES):
  """The `NamedSharding` tree for `model`'s params on `mesh`."""
  return partition.param_shardings(abstract_params(model), mesh, rules, hidden_dim=model.config.hidden_dim)


def init_params(model: gm.nn.Transformer, rng: jax.Array, shardings):
  """Randomly initialised params, created directly in their shards."""
  tokens = jnp.zeros((1, 8), jnp.int32)
  init = jax.jit(lambda r: model.init(r, tokens)["params"], out_shardings=shardings)
  return init(rng)


def _sharded_target(abstract, shardings):
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


def load_gemma_checkpoint(path: epath.PathLike, model: gm.nn.Transformer, shardings):
  """Loads an official Gemma checkpoint (any layout the gemma library reads) into `shardings`.

  Params are cast to the model's param dtype. Raises FileNotFoundError / ValueError with the path
  when the checkpoint is missing or belongs to another architecture.
  """
  path = epath.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"Gemma checkpoint {path} does not exist")
  expected = abstract_params(model)
  try:  # The gemma loader maps flat/nested/stacked layouts onto the model's tree.
    params = gm.ckpts.load_params(path, params=_sharded_target(expected, shardings), donate=False)
  except (KeyError, ValueError) as e:
    raise ValueError(
      f"Gemma checkpoint {path} does not match model with {model.config.num_layers} layers: {e}"
    ) from e
  _check_structure(params, expected, f"Gemma checkpoint {path}")
  return params


def save_params(path: epath.PathLike, params) -> None:
  """Writes params with orbax (atomically: a half-written checkpoint is never read back)."""
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(epath.Path(path), params)
  checkpointer.wait_until_finished()


def restore_params(path: epath.PathLike, model: gm.nn.Transformer, shardings):
  """Reads params written by `save_params` straight into `shardings`."""
  path = epath.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"params checkpoint {path} does not exist")
  expected = abstract_params(model)
  params = ocp.StandardCheckpointer().restore(path, _sharded_target(expected, shardings))
  _check_structure(params, expected, f"params checkpoint {path}")
  return params
