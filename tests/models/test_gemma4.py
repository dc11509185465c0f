"""Gemma 4 through the gemma library's own modules: tiny dense (per-layer inputs, layers that reuse
another layer's KV cache) and MoE (routed experts beside a dense branch) configs on fake devices."""

import dataclasses

import flax
from gemma import gm
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eva_jax.models import architectures
from eva_jax.models import batching
from eva_jax.models import chat_template
from eva_jax.models import logprobs
from eva_jax.models import params as params_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.sampling import sampler

NAMES = ("tiny_gemma4", "tiny_gemma4_moe")
PROMPTS = ["Add 1 and 2.", "What is 33 + 44?", "I have 5 coins and find 17 more. How many coins do I have?"]
GREEDY = sampler.SamplingConfig(num_samples=1, max_new_tokens=12, temperature=0.0, top_p=1.0)


@pytest.fixture(scope="module", params=NAMES)
def model_and_params(request, mesh1):
  model = architectures.build_model(request.param)
  return model, params_lib.init_params(model, jax.random.key(0), params_lib.shardings_for(model, mesh1))


def test_the_tiny_configs_exercise_gemma4s_own_paths():
  dense, moe = (architectures.build_model(n) for n in NAMES)
  assert architectures.is_gemma4(dense) and architectures.is_gemma4(moe)
  assert not architectures.is_gemma4(architectures.build_model("tiny"))
  # Dense: the last 3 of 6 layers read the KV cache of an earlier layer of their type.
  pattern = gm.nn.gemma4._config.create_kv_cache_sharing_patterns(
    dense.config.kv_cache_sharing_config, dense.config.num_layers, dense.config.attention_types
  )
  assert pattern == [0, 1, 2, 1, 1, 2]
  assert dense.config.per_layer_input_dim > 0
  assert moe.config.enable_moe and moe.config.num_experts == 8 and moe.config.k_eq_v_global


def test_greedy_equals_the_gemma_library_sampler(model_and_params, tokenizer):
  model, params = model_and_params
  ours = sampler.sample(model, params, tokenizer, PROMPTS, GREEDY, jax.random.key(0))
  theirs = gm.text.Sampler(model=model, params=params, tokenizer=tokenizer, cache_length=512)
  for row, prompt in enumerate(PROMPTS):
    out = theirs.sample(
      chat_template.format_prompt(prompt),
      max_new_tokens=GREEDY.max_new_tokens,
      sampling=gm.text.Greedy(),
      return_state=True,
    )
    n = ours.lengths[row]
    assert n >= 4  # enough decode steps past the prefill to compare
    assert np.asarray(out.tokens)[:n].tolist() == ours.tokens[row, :n].tolist()


def test_cached_decode_equals_full_forward_passes(model_and_params, tokenizer):
  """The KV cache (the shared layers' included) gives the tokens that full forward passes give."""
  model, params = model_and_params
  ours = sampler.sample(model, params, tokenizer, PROMPTS, GREEDY, jax.random.key(0))
  for row, prompt in enumerate(PROMPTS):
    ids = batching.encode_prompts(tokenizer, [prompt])[0]
    n = int(ours.lengths[row])
    generated = ours.tokens[row, :n].tolist()
    # One uncached forward pass over prompt + output: greedy means each token is the argmax there.
    logits = model.apply({"params": params}, jnp.asarray([ids + generated])).logits[0]
    assert jnp.argmax(logits[len(ids) - 1 : len(ids) - 1 + n], axis=-1).tolist() == generated


def test_sampled_logprobs_equal_chunked_logprobs(model_and_params, tokenizer):
  model, params = model_and_params
  config = dataclasses.replace(GREEDY, num_samples=2, temperature=1.0, max_new_tokens=8)
  samples = sampler.sample(model, params, tokenizer, PROMPTS[:2], config, jax.random.key(3))
  prompts = [PROMPTS[i] for i in samples.prompt_index]
  rows = [
    list(batching.encode_prompts(tokenizer, [p])[0]) + t.tolist() for p, t in zip(prompts, samples.tokens)
  ]
  width = max(map(len, rows))
  tokens = jnp.asarray([[0] * (width - len(r)) + r for r in rows])
  mask = tokens != 0
  lp = logprobs.token_logprobs(
    model, params, tokens, mask, score_start=width - config.max_new_tokens, chunk_size=4
  )
  np.testing.assert_allclose(lp[:, -config.max_new_tokens :], samples.logprobs, atol=2e-5)


@pytest.mark.devices(8)
def test_sharded_logprobs_and_greedy_equal_one_device(model_and_params, tokenizer):
  model, params = model_and_params
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  sharded = jax.device_put(params, params_lib.shardings_for(model, mesh))
  batch = batching.make_batch(tokenizer, PROMPTS * 3 + PROMPTS[:1] * 3, ["4", "77", "22"] * 4)
  args = (batch.tokens, batch.input_mask, batch.response_mask)
  one, _ = logprobs.jitted_sequence_logprobs(model, 1, 8)(params, *args)
  many, _ = logprobs.jitted_sequence_logprobs(model, 1, 8, mesh)(sharded, *args)
  np.testing.assert_allclose(many, one, rtol=1e-5)
  assert float(jnp.abs(one).min()) > 0
  config = dataclasses.replace(GREEDY, num_samples=2)
  a = sampler.sample(model, params, tokenizer, PROMPTS, config, jax.random.key(0))
  b = sampler.sample(model, sharded, tokenizer, PROMPTS, config, jax.random.key(0), mesh=mesh)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-4)


@pytest.mark.devices(8)
def test_expert_weights_split_over_fsdp_and_tensor_not_the_expert_axis():
  model = architectures.build_model("tiny_gemma4_moe")
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  specs = {
    k: s.spec
    for k, s in flax.traverse_util.flatten_dict(params_lib.shardings_for(model, mesh), sep="/").items()
  }
  assert specs["layer_0/mlp/gating_einsum/w"] == jax.sharding.PartitionSpec(None, None, "tensor", "fsdp")
  assert specs["layer_0/mlp/linear/w"] == jax.sharding.PartitionSpec(None, "tensor", "fsdp")
  assert specs["layer_0/mlp2/gating_einsum"] == jax.sharding.PartitionSpec(None, "tensor", "fsdp")
  assert specs["layer_2/attn/k_einsum/w"] == jax.sharding.PartitionSpec(None, "fsdp", None)  # one KV head
  dense = architectures.build_model("tiny_gemma4")
  specs = {
    k: s.spec
    for k, s in flax.traverse_util.flatten_dict(params_lib.shardings_for(dense, mesh), sep="/").items()
  }
  # A KV-sharing layer's wider MLP is still recognised by its width.
  assert specs["layer_5/mlp/gating_einsum"] == jax.sharding.PartitionSpec(None, "tensor", "fsdp")
  assert specs["embedder/per_layer_embeddings"] == jax.sharding.PartitionSpec("tensor", None, "fsdp")
