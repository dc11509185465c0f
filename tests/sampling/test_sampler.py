import dataclasses

from gemma import gm
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eva_jax.models import batching
from eva_jax.models import chat_template
from eva_jax.models import logprobs
from eva_jax.models import params as params_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.sampling import filters
from eva_jax.sampling import sampler

PROMPTS = ["Add 1 and 2.", "What is 33 + 44?", "I have 5 coins and find 17 more. How many coins do I have?"]
GREEDY = sampler.SamplingConfig(num_samples=1, max_new_tokens=10, temperature=0.0, top_p=1.0)


def _sample(model, params, tokenizer, config, prompts=PROMPTS, seed=0, **kwargs):
  return sampler.sample(model, params, tokenizer, prompts, config, jax.random.key(seed), **kwargs)


def _reference_greedy(model, params, tokenizer, prompt, steps, stop_ids):
  """Step-by-step decode with full forward passes over the whole sequence (no cache)."""
  ids = batching.encode_prompts(tokenizer, [prompt])[0]
  out = []
  for _ in range(steps):
    logits = model.apply({"params": params}, jnp.asarray([ids + out])).logits
    out.append(int(jnp.argmax(logits[0, -1])))
    if out[-1] in stop_ids:
      break
  return out


def test_greedy_equals_full_forward_reference(tiny_model, tiny_params, tokenizer):
  samples = _sample(tiny_model, tiny_params, tokenizer, GREEDY)
  stop_ids = {tokenizer.special_tokens.EOS, tokenizer.special_tokens.END_OF_TURN}
  for row, prompt in enumerate(PROMPTS):
    ref = _reference_greedy(tiny_model, tiny_params, tokenizer, prompt, GREEDY.max_new_tokens, stop_ids)
    assert samples.tokens[row, : samples.lengths[row]].tolist() == ref


def test_greedy_equals_gemma_library_sampler(tiny_model, tiny_params, tokenizer):
  samples = _sample(tiny_model, tiny_params, tokenizer, GREEDY)
  theirs = gm.text.Sampler(model=tiny_model, params=tiny_params, tokenizer=tokenizer, cache_length=512)
  for row, prompt in enumerate(PROMPTS):
    out = theirs.sample(
      chat_template.format_prompt(prompt),
      max_new_tokens=GREEDY.max_new_tokens,
      sampling=gm.text.Greedy(),
      return_state=True,
    )
    n = samples.lengths[row]
    assert np.asarray(out.tokens)[:n].tolist() == samples.tokens[row, :n].tolist()


def test_sampled_logprobs_equal_recomputed_logprobs(tiny_model, tiny_params, tokenizer):
  config = sampler.SamplingConfig(num_samples=2, max_new_tokens=8, temperature=1.0, top_p=1.0)
  samples = _sample(tiny_model, tiny_params, tokenizer, config)
  prompt_ids = batching.encode_prompts(tokenizer, PROMPTS)
  width = max(map(len, prompt_ids)) + config.max_new_tokens
  tokens = np.zeros((len(samples.lengths), width), np.int32)
  response = np.zeros(tokens.shape, bool)
  for row, (p, n) in enumerate(zip(samples.prompt_index, samples.lengths)):
    ids = prompt_ids[p] + samples.tokens[row, :n].tolist()
    tokens[row, : len(ids)] = ids
    response[row, len(prompt_ids[p]) : len(ids)] = True
  total, per_token = logprobs.sequence_logprobs(tiny_model, tiny_params, tokens, tokens != 0, response)
  np.testing.assert_allclose(samples.logprobs.sum(axis=1), np.asarray(total), rtol=1e-4, atol=1e-4)
  recomputed = np.asarray(per_token)[response]
  ours = np.concatenate([samples.logprobs[r, :n] for r, n in enumerate(samples.lengths)])
  np.testing.assert_allclose(ours, recomputed, atol=1e-4)


def test_top_k_one_equals_greedy(tiny_model, tiny_params, tokenizer):
  greedy = _sample(tiny_model, tiny_params, tokenizer, GREEDY)
  top1 = _sample(
    tiny_model, tiny_params, tokenizer, dataclasses.replace(GREEDY, temperature=1.0, top_k=1), seed=7
  )
  np.testing.assert_array_equal(greedy.tokens, top1.tokens)


def test_top_p_keeps_only_the_nucleus():
  probs = np.array([0.5, 0.3, 0.15, 0.05])
  logits = jnp.log(jnp.asarray(probs))[None]
  kept = lambda p: (np.asarray(filters.top_p_filter(logits, p)) > -1e29)[0].tolist()
  assert kept(0.7) == [True, True, False, False]
  assert kept(0.8) == [True, True, False, False]
  assert kept(0.81) == [True, True, True, False]
  assert kept(0.1) == [True, False, False, False]
  assert kept(1.0) == [True] * 4
  draws = jax.vmap(lambda k: filters.draw(logits, k, temperature=1.0, top_k=0, top_p=0.7))(
    jax.random.split(jax.random.key(0), 4000)
  )
  counts = np.bincount(np.asarray(draws).ravel(), minlength=4)
  assert counts[2] == counts[3] == 0
  np.testing.assert_allclose(counts[0] / counts.sum(), 0.5 / 0.8, atol=0.03)


def test_top_k_filter_keeps_the_k_largest():
  logits = jnp.asarray([[1.0, 4.0, 3.0, 2.0]])
  assert (np.asarray(filters.top_k_filter(logits, 2)) > -1e29).tolist() == [[False, True, True, False]]


def test_stop_token_ends_the_sequence_and_pads_after_it(tiny_model, tiny_params, tokenizer):
  free = _sample(tiny_model, tiny_params, tokenizer, GREEDY)
  assert set(free.finish_reason) == {"length"}
  stop = int(free.tokens[1, 3])  # a token greedy decoding emits at step 3 of prompt 1
  samples = _sample(
    tiny_model, tiny_params, tokenizer, dataclasses.replace(GREEDY, extra_stop_tokens=(stop,))
  )
  first = free.tokens[1].tolist().index(stop)
  assert samples.lengths[1] == first + 1 and samples.finish_reason[1] == "stop"
  assert samples.tokens[1, first] == stop
  assert np.all(samples.tokens[1, first + 1 :] == 0) and np.all(samples.logprobs[1, first + 1 :] == 0)
  np.testing.assert_array_equal(samples.tokens[1, : first + 1], free.tokens[1, : first + 1])
  assert samples.text[1] == tokenizer.decode(free.tokens[1, :first].tolist())


def test_randomness_is_keyed_and_samples_are_independent(tiny_model, tiny_params, tokenizer):
  config = sampler.SamplingConfig(num_samples=4, max_new_tokens=6, temperature=1.0, top_p=1.0)
  a = _sample(tiny_model, tiny_params, tokenizer, config, seed=1)
  b = _sample(tiny_model, tiny_params, tokenizer, config, seed=1)
  c = _sample(tiny_model, tiny_params, tokenizer, config, seed=2)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  assert not np.array_equal(a.tokens, c.tokens)
  assert a.prompt_index.tolist() == [0] * 4 + [1] * 4 + [2] * 4
  for p in range(len(PROMPTS)):
    assert len({tuple(row) for row in a.tokens[a.prompt_index == p]}) == 4  # no two samples alike


def test_shape_buckets_bound_compilations(tiny_model, tiny_params, tokenizer):
  config = sampler.SamplingConfig(num_samples=2, max_new_tokens=5, temperature=1.0, top_p=0.95)
  before = sampler.compile_count(tiny_model, config, tokenizer)
  short = [f"Add {a} and {a + 1}." for a in range(1, 9)]  # all 16 tokens with the chat template
  assert {len(ids) for ids in batching.encode_prompts(tokenizer, short)} == {16}
  for size in (1, 2, 3, 4, 3, 2, 1):  # row buckets 1, 2, 4
    _sample(tiny_model, tiny_params, tokenizer, config, prompts=short[:size])
  assert sampler.compile_count(tiny_model, config, tokenizer) - before == 3
  longer = ["Find the sum of 2 and 9.", "What is 8 + 1?", "Find the sum of 20 and 90."]  # 17-32 tokens
  _sample(tiny_model, tiny_params, tokenizer, config, prompts=longer)
  _sample(tiny_model, tiny_params, tokenizer, config, prompts=longer[::-1] + short[:1])
  assert sampler.compile_count(tiny_model, config, tokenizer) - before == 4


@pytest.mark.devices(8)
def test_sharded_greedy_equals_one_device(tiny_model, tiny_params, tokenizer):
  one = _sample(tiny_model, tiny_params, tokenizer, dataclasses.replace(GREEDY, num_samples=2))
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  sharded = jax.device_put(tiny_params, params_lib.shardings_for(tiny_model, mesh))
  many = _sample(tiny_model, sharded, tokenizer, dataclasses.replace(GREEDY, num_samples=2), mesh=mesh)
  np.testing.assert_array_equal(one.tokens, many.tokens)
  np.testing.assert_allclose(one.logprobs, many.logprobs, atol=1e-4)


@pytest.mark.parametrize(
  "prompts,overrides,match",
  [
    ([], {}, "no prompts"),
    (["ok", ""], {}, "prompt 1 is empty"),
    (["What is 1 + 2?"], {"max_cache_length": 20, "max_new_tokens": 8}, "prompt 0 has .* tokens"),
    (["ok"], {"num_samples": 0}, "num_samples must be >= 1"),
    (["ok"], {"max_new_tokens": 0}, "max_new_tokens must be >= 1"),
    (["ok"], {"top_p": 0.0}, "top_p must be in"),
    (["ok"], {"max_cache_length": 8, "max_new_tokens": 8}, "leaves no room"),
  ],
)
def test_bad_input_is_refused_clearly(tiny_model, tiny_params, tokenizer, prompts, overrides, match):
  with pytest.raises(ValueError, match=match):
    _sample(tiny_model, tiny_params, tokenizer, dataclasses.replace(GREEDY, **overrides), prompts=prompts)


def test_a_longer_fixed_cache_changes_nothing(tiny_model, tiny_params, tokenizer):
  tight = _sample(tiny_model, tiny_params, tokenizer, GREEDY)
  padded = _sample(tiny_model, tiny_params, tokenizer, dataclasses.replace(GREEDY, min_cache_length=128))
  np.testing.assert_array_equal(tight.tokens, padded.tokens)
  np.testing.assert_allclose(tight.logprobs, padded.logprobs, atol=1e-5)
