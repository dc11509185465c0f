import dataclasses

from gemma import gm
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eva_jax.models import architectures
from eva_jax.models import batching
from eva_jax.models import logprobs


def _direct_token_logprobs(model, params, tokens, input_mask):
  """Reference: one full `Transformer.apply` with all `[B, L, V]` logits, then log-softmax."""
  logits = model.apply(
    {"params": params},
    tokens,
    positions=logprobs.positions_from_mask(input_mask),
    attention_mask=logprobs.causal_attention_mask(input_mask),
  ).logits
  lp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), axis=-1)
  lp = jnp.take_along_axis(lp, tokens[:, 1:, None], axis=-1)[..., 0]
  return jnp.pad(lp, ((0, 0), (1, 0))) * input_mask


def _padded_batch(rng, lengths_and_offsets, length):
  tokens = np.zeros((len(lengths_and_offsets), length), np.int32)
  mask = np.zeros(tokens.shape, bool)
  for row, (n, offset) in enumerate(lengths_and_offsets):
    tokens[row, offset : offset + n] = rng.integers(7, 512, size=n)
    mask[row, offset : offset + n] = True
  return jnp.asarray(tokens), jnp.asarray(mask)


@pytest.mark.parametrize(
  "layout",
  [
    [(30, 10), (40, 0), (25, 15)],  # left-padded
    [(30, 0), (40, 0), (25, 0)],  # right-padded
    [(20, 7), (33, 2), (40, 0)],  # padding on both sides
  ],
)
@pytest.mark.parametrize("chunk_size", [5, 128])
def test_token_logprobs_equal_direct_forward(tiny_model, tiny_params, layout, chunk_size):
  tokens, mask = _padded_batch(np.random.default_rng(1), layout, 40)
  ours = logprobs.token_logprobs(tiny_model, tiny_params, tokens, mask, chunk_size=chunk_size)
  ref = _direct_token_logprobs(tiny_model, tiny_params, tokens, mask)
  # Column 0 and the first real token of each row have no prediction to score in the reference
  # either: its log-prob is conditioned on padding only, which both versions treat the same way.
  np.testing.assert_allclose(np.asarray(ours), ref, atol=2e-5, rtol=1e-5)
  assert np.all(np.asarray(ours)[~np.asarray(mask)] == 0)


def test_score_start_skips_columns_and_keeps_the_rest(tiny_model, tiny_params):
  tokens, mask = _padded_batch(np.random.default_rng(2), [(24, 8), (32, 0)], 32)
  full = np.asarray(logprobs.token_logprobs(tiny_model, tiny_params, tokens, mask))
  part = np.asarray(
    logprobs.token_logprobs(tiny_model, tiny_params, tokens, mask, score_start=20, chunk_size=3)
  )
  np.testing.assert_allclose(part[:, 20:], full[:, 20:], atol=2e-5)
  assert np.all(part[:, :20] == 0)
  with pytest.raises(ValueError, match="score_start"):
    logprobs.token_logprobs(tiny_model, tiny_params, tokens, mask, score_start=0)


def _score(model, params, batch: batching.TokenBatch):
  """`sequence_logprobs` of a `TokenBatch`, scoring from its first response column."""
  return logprobs.sequence_logprobs(
    model, params, batch.tokens, batch.input_mask, batch.response_mask, score_start=batch.score_start
  )


def test_sequence_logprob_does_not_depend_on_padding_side(tiny_model, tiny_params, tokenizer):
  prompts, responses = ["Add 12 and 7.", "What is 100 + 250?"], ["Reversed sum: 91", "Reversed sum: 053"]
  batch = batching.make_batch(tokenizer, prompts, responses)
  left = _score(tiny_model, tiny_params, batch)[0]
  # The same rows packed to the right with extra left columns: a different layout, same content.
  shift = 5
  right_tokens = np.pad(batch.tokens, ((0, 0), (shift, 0)))
  right_mask = np.pad(batch.input_mask, ((0, 0), (shift, 0)))
  right_resp = np.pad(batch.response_mask, ((0, 0), (shift, 0)))
  right = logprobs.sequence_logprobs(tiny_model, tiny_params, right_tokens, right_mask, right_resp)[0]
  np.testing.assert_allclose(np.asarray(left), np.asarray(right), rtol=1e-5)
  # And each row scored alone equals its score in the batch.
  for row, (p, r) in enumerate(zip(prompts, responses)):
    alone = batching.make_batch(tokenizer, [p], [r], length_multiple=1)
    seq = _score(tiny_model, tiny_params, alone)[0]
    np.testing.assert_allclose(float(seq[0]), float(left[row]), rtol=1e-5)


def test_sequence_logprob_sums_only_response_tokens(tiny_model, tiny_params, tokenizer):
  batch = batching.make_batch(tokenizer, ["Add 3 and 4."], ["Reversed sum: 7"])
  total, per_token = _score(tiny_model, tiny_params, batch)
  ref = _direct_token_logprobs(
    tiny_model, tiny_params, jnp.asarray(batch.tokens), jnp.asarray(batch.input_mask)
  )
  np.testing.assert_allclose(float(total[0]), np.asarray(ref)[0][batch.response_mask[0]].sum(), rtol=1e-5)
  assert np.all(np.asarray(per_token)[~batch.response_mask] == 0)
  assert logprobs.first_response_column(batch.response_mask) == batch.score_start


def test_gradients_equal_direct_computation(tiny_model, tiny_params):
  tokens, mask = _padded_batch(np.random.default_rng(3), [(20, 4), (24, 0)], 24)

  def ours(p):
    return logprobs.token_logprobs(tiny_model, p, tokens, mask, score_start=4, chunk_size=7).sum()

  g_ours = jax.grad(ours)(tiny_params)
  g_ref = jax.grad(lambda p: _direct_token_logprobs(tiny_model, p, tokens, mask)[:, 4:].sum())(tiny_params)
  for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4, rtol=1e-3)


def test_full_logits_are_never_materialised():
  # Vocabulary (512) differs from every other width here, so a [B, L, 512] array can only be logits.
  config = dataclasses.replace(architectures.TINY_CONFIG, hidden_dim=96)
  model = gm.nn.Transformer(config=config, dtype=jnp.float32)
  batch, length, chunk, vocab = 4, 48, 8, config.num_embed
  tokens = jnp.ones((batch, length), jnp.int32)
  mask = jnp.ones((batch, length), bool)
  params = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens)["params"])

  def loss(p):
    return logprobs.token_logprobs(model, p, tokens, mask, score_start=16, chunk_size=chunk).sum()

  forward = jax.jit(loss).lower(params).compile().as_text()
  backward = jax.jit(jax.grad(loss)).lower(params).compile().as_text()
  for hlo in (forward, backward):
    assert f"[{batch},{length},{vocab}]" not in hlo
    assert f"[{batch},{length - 1},{vocab}]" not in hlo
    assert f"[{batch},{length - 16},{vocab}]" not in hlo
    assert f"[{batch * chunk},{vocab}]" in hlo or f"[{batch},{chunk},{vocab}]" in hlo
