"""Partition rules: every Gemma parameter gets logical axis names; a short table maps them to mesh axes.

Logical axes: `vocab`, `embed`, `heads`, `kv_heads`, `head_dim`, `mlp`, `norm`, `stack` (the
leading 2/3 of fused kv/qkv/gating weights), and Gemma 4's `layers` (its per-layer input tables),
`per_layer` (their width), `experts` and `expert_mlp`. The default table shards the embedding width
over "fsdp" and heads/MLP/vocab over "tensor" (Megatron style); it lives in the config as data. A
dimension that a mesh axis does not divide (e.g. one KV head over tensor=2) stays replicated.

Experts (Gemma 4 26B-A4B): each expert's hidden width goes over "tensor" and the model width over
"fsdp", as a dense MLP's do, and the expert axis stays whole. The gemma library's MoE sorts every
token of the batch into one `ragged_dot` over all experts; splitting the expert axis over a mesh
axis would need an all-to-all dispatch that the library's module does not have, while splitting
the two matrix dimensions keeps each device's share of the 128 experts at 1 / (fsdp x tensor).
"""

from collections.abc import Sequence
import re

import flax
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from eva_jax.parallel import mesh as mesh_lib

DEFAULT_RULES = (
  ("vocab", "tensor"),
  ("embed", "fsdp"),
  ("heads", "tensor"),
  ("kv_heads", "tensor"),
  ("mlp", "tensor"),
  ("head_dim", None),
  ("norm", None),
  ("stack", None),
  ("layers", None),
  ("per_layer", "fsdp"),  # Gemma 4 E2B's per-layer table is 2.3B params: split it on both axes
  ("experts", None),
  ("expert_mlp", "tensor"),
)

# (regex on the "/"-joined param path, logical axes). First match wins.
_PARAM_AXES = (
  (r"embedder/input_embedding$", ("vocab", "embed")),
  (r"embedder/per_layer_embeddings$", ("vocab", "layers", "per_layer")),
  (r"embedder/per_layer_model_projection/w$", ("embed", "layers", "per_layer")),
  (r"attn/k_einsum/w$", ("kv_heads", "embed", "head_dim")),
  (r"attn/q_einsum/w$", ("heads", "embed", "head_dim")),
  (r"attn/kv_einsum/w$", ("stack", "kv_heads", "embed", "head_dim")),
  (r"attn/qkv_einsum/w$", ("stack", "heads", "embed", "head_dim")),
  (r"attn/attn_vec_einsum/w$", ("heads", "head_dim", "embed")),
  (r"mlp2?/linear$", ("mlp", "embed")),
  (r"mlp/gating_einsum/w$", ("experts", "stack", "expert_mlp", "embed")),
  (r"mlp/linear/w$", ("experts", "expert_mlp", "embed")),
  (r"mlp/router_logits/w$", ("embed", "experts")),
  (r"mlp/(per_expert_scale|router_scale)$", ("norm",)),
  (r"per_layer_input_gate/w$", ("embed", "per_layer")),
  (r"per_layer_projection/w$", ("per_layer", "embed")),
  (r"(norm/scale|skip_scale)$", ("norm",)),
)


def logical_axes(path: str, shape: Sequence[int], *, embed_dim: int) -> tuple[str, ...]:
  """Logical axis names of the Gemma param at `path` ("layer_0/mlp/linear") with `shape`."""
  if re.search(r"mlp2?/gating_einsum$", path):
    # [2, F, D] when stored transposed (Gemma 2 9b/27b, Gemma 3, Gemma 4), else [2, D, F]. The width
    # tells them apart: Gemma 4's KV-sharing layers and its MoE's dense branch have their own F.
    return ("stack", "mlp", "embed") if shape[2] == embed_dim else ("stack", "embed", "mlp")
  for pattern, axes in _PARAM_AXES:
    if re.search(pattern, path):
      if len(axes) != len(shape):
        raise ValueError(f"param {path} has shape {tuple(shape)}; rule expects axes {axes}")
      return axes
  raise ValueError(f"no partition rule for param {path} (shape {tuple(shape)})")


def spec_for(axes: Sequence[str], shape: Sequence[int], mesh: jax.sharding.Mesh, rules) -> P:
  """The `PartitionSpec` for logical `axes`; a mesh axis is used once and only where it divides."""
  table = dict(rules)
  used, spec = set(), []
  for axis, size in zip(axes, shape):
    mesh_axis = table.get(axis)
    if mesh_axis is None or mesh_axis in used or size % mesh.shape[mesh_axis]:
      spec.append(None)
    else:
      used.add(mesh_axis)
      spec.append(mesh_axis)
  return P(*spec)


def param_shardings(params, mesh: jax.sharding.Mesh, rules=DEFAULT_RULES, *, embed_dim: int):
  """A pytree of `NamedSharding` matching `params` (arrays or `ShapeDtypeStruct`s)."""
  flat = flax.traverse_util.flatten_dict(params, sep="/")
  shardings = {
    path: NamedSharding(
      mesh, spec_for(logical_axes(path, leaf.shape, embed_dim=embed_dim), leaf.shape, mesh, rules)
    )
    for path, leaf in flat.items()
  }
  return flax.traverse_util.unflatten_dict(shardings, sep="/")


def batch_sharding(mesh: jax.sharding.Mesh, ndim: int = 2) -> NamedSharding:
  """Batch-major arrays: leading dimension over ("data", "fsdp"), the rest replicated."""
  return NamedSharding(mesh, P(mesh_lib.BATCH_AXES, *([None] * (ndim - 1))))


def replicated(mesh: jax.sharding.Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def validate_rules(rules: Sequence[Sequence]) -> None:
  """Raises ValueError naming the first bad rule (unknown logical or mesh axis)."""
  known = {name for name, _ in DEFAULT_RULES}
  for rule in rules:
    if len(rule) != 2:
      raise ValueError(f"rule {tuple(rule)!r} must be (logical_axis, mesh_axis or None)")
    logical, mesh_axis = rule
    if logical not in known:
      raise ValueError(f"rule {tuple(rule)!r}: logical axis {logical!r} is not one of {sorted(known)}")
    if mesh_axis is not None and mesh_axis not in mesh_lib.AXES:
      raise ValueError(f"rule {tuple(rule)!r}: mesh axis {mesh_axis!r} is not one of {list(mesh_lib.AXES)}")


def per_device_bytes(tree) -> int:
  """Bytes of `tree`'s arrays held by one device (the first addressable one)."""
  device = jax.local_devices()[0]
  total = 0
  for leaf in jax.tree.leaves(tree):
    for shard in leaf.addressable_shards:
      if shard.device == device:
        total += shard.data.nbytes
  return total
