"""Keep a model's activations split over the batch axes, so FSDP gathers weights, not activations.

The default rules split the embedding width over "fsdp" (params) and batches over ("data",
"fsdp"). Left to itself, XLA's sharding propagation resolves that conflict at the embedding
lookup in favour of the table: activations become `[B (whole), L, D / fsdp]`, every matmul
contracting over D ends in an all-reduce of activations, and each device computes every row. On
gemma3_1b at the paper's DPO sizes that was 140 GB of all-reduce per reference log-prob pass and
the chunk logits for all 128 rows on each device (bench.scale_check, bench/RESULTS.md).
Constraining the residual stream (the embedder's output and each block's) to `[B / (data x
fsdp), L, D]` makes the partitioner gather each layer's weights instead, which is what FSDP means.

`apply` runs the model that way. It calls gemma's `Transformer.__call__` without the `nn.jit`
gemma wraps it in: that jit caches its trace by module and argument shapes, not by the
constraints active while tracing, so a trace made without a mesh (or for another mesh) would be
reused silently and the constraints lost.
"""

import contextlib

import flax.linen as nn
from gemma.gm.nn import _modules
from gemma.gm.nn.gemma4 import _modules as gemma4_modules
import jax
import numpy as np

from eva_jax.parallel import mesh as mesh_lib


def constrain_rows(x: jax.Array, mesh: jax.sharding.Mesh | None) -> jax.Array:
  """`x` with its leading (batch) dimension over the batch axes and the rest as XLA likes.

  A no-op without a mesh, or where the batch axes do not divide the rows (a batch of one
  sampled prompt, say)."""
  if mesh is None:
    return x
  split = int(np.prod([mesh.shape[a] for a in mesh_lib.BATCH_AXES]))
  if x.ndim == 0 or x.shape[0] % split:
    return x
  rest = [jax.sharding.PartitionSpec.UNCONSTRAINED] * (x.ndim - 1)
  spec = jax.sharding.PartitionSpec(mesh_lib.BATCH_AXES, *rest)
  return jax.lax.with_sharding_constraint(x, jax.sharding.NamedSharding(mesh, spec))


def _residual(x: jax.Array, mesh) -> jax.Array:
  """The residual stream `[B, L, D]`: rows split, width whole (D is what the weights split)."""
  split = int(np.prod([mesh.shape[a] for a in mesh_lib.BATCH_AXES]))
  if x.ndim != 3 or x.shape[0] % split:
    return x
  spec = jax.sharding.PartitionSpec(mesh_lib.BATCH_AXES, None, None)
  return jax.lax.with_sharding_constraint(x, jax.sharding.NamedSharding(mesh, spec))


# Gemma 2/3 and Gemma 4 have their own module classes with the same residual-stream interfaces.
_EMBEDDERS = (_modules.Embedder, gemma4_modules.Embedder)
_BLOCKS = (_modules.Block, gemma4_modules.Block)


@contextlib.contextmanager
def rows_split(mesh: jax.sharding.Mesh | None):
  """Within this context (while tracing), gemma's residual stream stays split over the batch axes."""
  if mesh is None:
    yield
    return

  def interceptor(call, args, kwargs, context):
    out = call(*args, **kwargs)
    if isinstance(context.module, _EMBEDDERS) and context.method_name == "encode":
      return _residual(out, mesh)
    if isinstance(context.module, _BLOCKS) and context.method_name == "__call__":
      cache, x = out
      return cache, _residual(x, mesh)
    return out

  with nn.intercept_methods(interceptor):
    yield


def _call_unjitted(module, *args, **kwargs):
  call = type(module).__call__
  return getattr(call, "__wrapped__", call)(module, *args, **kwargs)


def apply(model, params, *args, mesh: jax.sharding.Mesh | None = None, **kwargs):
  """`model.apply({"params": params}, *args, **kwargs)`; with a `mesh`, rows stay split over its
  batch axes in every layer (traced afresh inside the caller's jit, see the module docstring)."""
  if mesh is None:
    return model.apply({"params": params}, *args, **kwargs)
  with rows_split(mesh):
    return model.apply({"params": params}, *args, method=_call_unjitted, **kwargs)
