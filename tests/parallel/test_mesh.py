import jax
import numpy as np
import pytest

from eva_jax.models import batching
from eva_jax.models import logprobs
from eva_jax.models import params as params_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition


@pytest.mark.parametrize(
  "shape,devices,expected",
  [
    ({"data": -1}, 8, (8, 1, 1)),
    ({"data": -1, "fsdp": 2, "tensor": 2}, 8, (2, 2, 2)),
    ({"fsdp": -1, "tensor": 4}, 8, (1, 2, 4)),
    ({"data": 1}, 1, (1, 1, 1)),
  ],
)
def test_resolve_mesh_shape(shape, devices, expected):
  assert mesh_lib.resolve_mesh_shape(shape, devices) == expected


@pytest.mark.parametrize(
  "shape,match",
  [
    ({"data": 3, "fsdp": -1}, "multiple of 3"),
    ({"data": 2, "fsdp": 2}, "uses 4 devices; there are 8"),
    ({"data": -1, "fsdp": -1}, "only one mesh axis"),
    ({"data": 0}, "'data' must be"),
    ({"model": 2}, "unknown mesh axes"),
  ],
)
def test_impossible_mesh_shapes_are_named(shape, match):
  with pytest.raises(ValueError, match=match):
    mesh_lib.resolve_mesh_shape(shape, 8)


def test_eight_devices_are_available():
  assert jax.device_count() == 8


@pytest.mark.parametrize(
  "shape", [{"data": 2, "fsdp": 2, "tensor": 2}, {"fsdp": 4, "tensor": 2}, {"data": 8}]
)
def test_sharded_logprobs_equal_one_device(tiny_model, tiny_params, tokenizer, shape):
  prompts = ["Add 12 and 7.", "What is 100 + 250?", "Compute 5+5.", "Find the sum of 31 and 9."] * 2
  responses = ["Reversed sum: 91", "Reversed sum: 053", "Reversed sum: 01", "Reversed sum: 04"] * 2
  batch = batching.make_batch(tokenizer, prompts, responses)
  args = (batch.tokens, batch.input_mask, batch.response_mask)
  one = logprobs.jitted_sequence_logprobs(tiny_model, batch.score_start)(tiny_params, *args)

  mesh = mesh_lib.make_mesh(shape)
  shardings = params_lib.shardings_for(tiny_model, mesh)
  sharded_params = jax.device_put(tiny_params, shardings)
  sharded_args = [jax.device_put(a, partition.batch_sharding(mesh)) for a in args]
  # With the mesh, activations are constrained to stay split over the batch axes in every layer.
  score = logprobs.jitted_sequence_logprobs(tiny_model, batch.score_start, mesh=mesh)
  many = score(sharded_params, *sharded_args)
  assert not many[0].sharding.is_fully_replicated  # the batch stays split over devices
  np.testing.assert_allclose(np.asarray(many[0]), np.asarray(one[0]), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(many[1]), np.asarray(one[1]), atol=1e-5)

  # Forward logits of the plain model under the same shardings match too.
  def forward(p, t, m):
    return tiny_model.apply(
      {"params": p},
      t,
      positions=logprobs.positions_from_mask(m),
      attention_mask=logprobs.causal_attention_mask(m),
    ).logits

  np.testing.assert_allclose(
    np.asarray(jax.jit(forward)(sharded_params, *sharded_args[:2])),
    np.asarray(jax.jit(forward)(tiny_params, *args[:2])),
    atol=1e-4,
  )


def test_params_are_initialised_in_their_shards(tiny_model):
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  params = params_lib.init_params(tiny_model, jax.random.key(0), params_lib.shardings_for(tiny_model, mesh))
  embedding = params["embedder"]["input_embedding"]
  assert embedding.sharding.spec == jax.sharding.PartitionSpec("tensor", "fsdp")
  assert embedding.addressable_shards[0].data.shape == (256, 64)


def test_per_device_bytes_shrink_as_shards_grow(tiny_model, tiny_params):
  sizes = []
  for shape in (
    {"data": 8},
    {"data": 4, "fsdp": 2},
    {"data": 2, "fsdp": 2, "tensor": 2},
    {"fsdp": 4, "tensor": 2},
  ):
    mesh = mesh_lib.make_mesh(shape)
    sizes.append(
      partition.per_device_bytes(jax.device_put(tiny_params, params_lib.shardings_for(tiny_model, mesh)))
    )
  total = sum(x.nbytes for x in jax.tree.leaves(tiny_params))
  assert sizes[0] == total  # pure data parallelism replicates
  assert sizes[0] > sizes[1] > sizes[2] > sizes[3]
  assert sizes[3] < total / 6  # the big matrices are split 8 ways; only norms stay whole
