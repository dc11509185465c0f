import re

import flax
import jax
from jax.sharding import PartitionSpec as P
import pytest

from eva_jax.models import architectures
from eva_jax.models import params as params_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition


@pytest.mark.parametrize("name", sorted(architectures.ARCHITECTURES))
def test_every_param_of_every_architecture_has_a_rule(name):
  model = architectures.build_model(name, "bfloat16")
  abstract = params_lib.abstract_params(model)
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  shardings = params_lib.shardings_for(model, mesh)
  flat = flax.traverse_util.flatten_dict(shardings, sep="/")
  assert len(flat) == len(jax.tree.leaves(abstract))
  if name != "tiny" and name != "small":
    # Real models: every matrix is split over fsdp and tensor (gemma3_1b has a single KV head).
    for path, sharding in flat.items():
      # Small matrices (width x experts, width x per-layer width) need no tensor split.
      small = re.search(r"router_logits|per_layer_(model_projection|input_gate|projection)", path)
      if not path.endswith("scale") and not small:
        shape = flax.traverse_util.flatten_dict(abstract, sep="/")[path].shape
        single_kv_head = re.search(r"k(v)?_einsum/w$", path) and shape[-3] == 1
        assert {"fsdp"} | ({"tensor"} if not single_kv_head else set()) <= set(sharding.spec), path


def test_gating_einsum_axes_follow_its_layout():
  assert partition.logical_axes("layer_0/mlp/gating_einsum", (2, 512, 128), embed_dim=128) == (
    "stack",
    "mlp",
    "embed",
  )
  assert partition.logical_axes("layer_0/mlp/gating_einsum", (2, 128, 512), embed_dim=128) == (
    "stack",
    "embed",
    "mlp",
  )


def test_indivisible_dimensions_stay_replicated():
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  # One KV head cannot be split over tensor=2; the width can still go over fsdp.
  spec = partition.spec_for(
    ("stack", "kv_heads", "embed", "head_dim"), (2, 1, 128, 32), mesh, partition.DEFAULT_RULES
  )
  assert spec == P(None, None, "fsdp", None)
  # A mesh axis is used at most once per array.
  spec = partition.spec_for(("heads", "mlp"), (4, 8), mesh, (("heads", "tensor"), ("mlp", "tensor")))
  assert spec == P("tensor", None)


def test_unknown_param_is_an_error():
  with pytest.raises(ValueError, match="no partition rule for param layer_0/lora/a"):
    partition.logical_axes("layer_0/lora/a", (4, 4), embed_dim=8)


@pytest.mark.parametrize(
  "rules,match",
  [((("vocab", "model"),), "mesh axis 'model'"), ((("vocabulary", "tensor"),), "logical axis 'vocabulary'"),
   ((("vocab",),), "must be")],
)  # fmt: skip
def test_bad_rules_are_named(rules, match):
  with pytest.raises(ValueError, match=match):
    partition.validate_rules(rules)
