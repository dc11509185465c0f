"""The solver model of a run: mesh, tokenizer, gemma module, param shardings and params from the config."""

import dataclasses

import jax

from eva_jax.models import architectures
from eva_jax.models import base_model
from eva_jax.models import params as params_lib
from eva_jax.models import tokenizer as tokenizer_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition


@dataclasses.dataclass(frozen=True)
class SolverModel:
  mesh: jax.sharding.Mesh
  tokenizer: object  # gm.text.Tokenizer
  model: object  # gm.nn.Transformer
  shardings: dict  # NamedSharding tree of the params
  params: dict | None  # sharded params: the checkpoint, the shipped base or random init

  def describe(self) -> str:
    return (
      f"mesh {dict(self.mesh.shape)} on {jax.device_count()} {jax.devices()[0].platform} device(s); "
      f"{sum(x.size for x in jax.tree.leaves(self.params)):,} params, "
      f"{partition.per_device_bytes(self.params):,} bytes on device 0"
    )


def build(cfg, *, load_params: bool = True) -> SolverModel:
  """From a RunConfig: the mesh, tokenizer, model and its params placed in their shards.

  `load_params=False` leaves `params` None (a caller that restores a run checkpoint instead).
  """
  mesh = mesh_lib.make_mesh(dict(zip(mesh_lib.AXES, cfg.mesh.shape)))
  tokenizer = tokenizer_lib.load_tokenizer(cfg.model.tokenizer_kind, cfg.model.tokenizer or None)
  model = architectures.build_model(cfg.model.name, cfg.model.param_dtype)
  if model.config.num_embed < tokenizer.vocab_size:
    raise ValueError(
      f"tokenizer has {tokenizer.vocab_size} tokens; model {cfg.model.name} embeds only {model.config.num_embed}"
    )
  shardings = params_lib.shardings_for(model, mesh, cfg.mesh.rules)
  if not load_params:
    params = None
  elif cfg.model.checkpoint:
    params = params_lib.load_gemma_checkpoint(cfg.model.checkpoint, model, shardings, name=cfg.model.name)
  elif cfg.model.init == "base":
    params = base_model.load_params(model, shardings)
  else:
    params = params_lib.init_params(model, jax.random.key(cfg.seed), shardings)
  return SolverModel(mesh, tokenizer, model, shardings, params)
