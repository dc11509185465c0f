"""The JAX reward model: a Gemma backbone and a scalar linear head read at the last real token.

Params are `{"backbone": <gemma params>, "head": {"w": [D], "b": []}}`. The backbone runs for
final-normed hidden states only (`logprobs.hidden_states`: no logits), and the head reads the state
of each row's last real token: the `<end_of_turn>` that closes the response, which has attended to
the whole exchange. The backbone is sharded by the project's partition rules, the head's `w` like an
`embed` dimension. A checkpoint is a directory: `params/` (one orbax tree, restored straight into
its shards) and `reward_model.json` (architecture and dtype; written last, so it marks a complete
checkpoint).
"""

import functools
import json

from etils import epath
from gemma import gm
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
import orbax.checkpoint as ocp

from eva_jax import state_files
from eva_jax.models import architectures
from eva_jax.models import logprobs
from eva_jax.models import params as params_lib
from eva_jax.parallel import partition

METADATA_FILE = "reward_model.json"
PARAMS_DIR = "params"


def head_shardings(width: int, mesh: jax.sharding.Mesh, rules=partition.DEFAULT_RULES) -> dict:
  return {
    "w": NamedSharding(mesh, partition.spec_for(("embed",), (width,), mesh, rules)),
    "b": partition.replicated(mesh),
  }


def shardings_for(model: gm.nn.Transformer, mesh: jax.sharding.Mesh, rules=partition.DEFAULT_RULES) -> dict:
  """The `NamedSharding` tree of a reward model's params."""
  return {
    "backbone": params_lib.shardings_for(model, mesh, rules),
    "head": head_shardings(model.config.embed_dim, mesh, rules),
  }


def abstract_params(model: gm.nn.Transformer) -> dict:
  """`ShapeDtypeStruct` tree of a reward model's params (no allocation)."""
  width = model.config.embed_dim
  head = {"w": jax.ShapeDtypeStruct((width,), jnp.float32), "b": jax.ShapeDtypeStruct((), jnp.float32)}
  return {"backbone": params_lib.abstract_params(model), "head": head}


def init_params(model: gm.nn.Transformer, rng: jax.Array, shardings: dict, backbone=None) -> dict:
  """A fresh head (w ~ N(0, 1/D), b = 0) on `backbone` params (default: random init), in `shardings`."""
  backbone_rng, head_rng = jax.random.split(rng)
  if backbone is None:
    backbone = params_lib.init_params(model, backbone_rng, shardings["backbone"])
  width = model.config.embed_dim
  head = {
    "w": jax.random.normal(head_rng, (width,), jnp.float32) / jnp.sqrt(width),
    "b": jnp.zeros((), jnp.float32),
  }
  return {"backbone": backbone, "head": jax.device_put(head, shardings["head"])}


def last_token_index(input_mask_BxL: jax.Array) -> jax.Array:
  """`[B]` column of each row's last real token (0 for an all-padding row)."""
  columns = jnp.arange(input_mask_BxL.shape[-1], dtype=jnp.int32)
  return jnp.max(jnp.where(input_mask_BxL.astype(bool), columns, 0), axis=-1)


def rewards(
  model: gm.nn.Transformer,
  params: dict,
  tokens_BxL: jax.Array,
  input_mask_BxL: jax.Array,
  mesh: jax.sharding.Mesh | None = None,
) -> jax.Array:
  """`[B]` float32 rewards of a batch laid out as `batching.make_batch` builds it (any padding);
  with `mesh`, rows stay split over its batch axes in every layer (`parallel.activations`)."""
  x_BxLxD = logprobs.hidden_states(model, params["backbone"], tokens_BxL, input_mask_BxL, mesh)
  last_B = last_token_index(input_mask_BxL)
  x_BxD = jnp.take_along_axis(x_BxLxD, last_B[:, None, None], axis=1)[:, 0].astype(jnp.float32)
  return x_BxD @ params["head"]["w"] + params["head"]["b"]


@functools.cache
def jitted_rewards(model: gm.nn.Transformer, mesh: jax.sharding.Mesh, rules=partition.DEFAULT_RULES):
  """`rewards` jitted with explicit shardings: params by the rules, rows over ("data", "fsdp")."""
  return jax.jit(
    functools.partial(rewards, model, mesh=mesh),
    in_shardings=(
      shardings_for(model, mesh, rules),
      partition.batch_sharding(mesh),
      partition.batch_sharding(mesh),
    ),
    out_shardings=partition.batch_sharding(mesh, 1),
  )


def save(directory: epath.PathLike, params: dict, model_name: str, param_dtype: str) -> None:
  """Writes `params/` then `reward_model.json`; refuses to overwrite an existing checkpoint."""
  directory = epath.Path(directory)
  if (directory / PARAMS_DIR).exists():
    raise FileExistsError(f"reward-model checkpoint {directory} already exists")
  directory.mkdir(parents=True, exist_ok=True)
  params_lib.save_params(directory / PARAMS_DIR, params)  # collective: every process takes part
  metadata = {
    "model_name": model_name,
    "param_dtype": param_dtype,
    "embed_dim": int(params["head"]["w"].shape[0]),
  }
  if jax.process_index() == 0:
    (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=1))


def read_metadata(directory: epath.PathLike) -> dict:
  path = epath.Path(directory) / METADATA_FILE
  if not path.exists():
    raise FileNotFoundError(
      f"{path} does not exist: not a reward-model checkpoint (see --mode=train_reward_model)"
    )
  metadata = state_files.read_json(path)
  if metadata.get("model_name") not in architectures.ARCHITECTURES:
    raise ValueError(f"{path}: unknown model_name {metadata.get('model_name')!r}")
  return metadata


def load(directory: epath.PathLike, mesh: jax.sharding.Mesh, rules=partition.DEFAULT_RULES):
  """`(model, params, metadata)` of the checkpoint in `directory`, params restored into their shards."""
  directory = epath.Path(directory)
  metadata = read_metadata(directory)
  model = architectures.build_model(metadata["model_name"], metadata["param_dtype"])
  shardings = shardings_for(model, mesh, rules)
  target = jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract_params(model), shardings
  )
  try:
    params = ocp.StandardCheckpointer().restore(directory / PARAMS_DIR, target)
  except (ValueError, KeyError) as e:  # orbax lists every mismatching leaf: keep the message short
    raise ValueError(
      f"reward-model checkpoint {directory} does not match a {metadata['model_name']} reward model: {str(e)[:300]}"
    ) from None
  return model, params, metadata
