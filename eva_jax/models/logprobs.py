"""Log-probabilities of response tokens under a gemma `Transformer`: the project's core numerics.

Dimensions: B batch, L sequence length, D model width, V vocabulary, C chunk length.

A batch is `tokens_BxL` with `input_mask_BxL` (True on real tokens; padding may be on the left, the
right, or both) and, for sequence scores, `response_mask_BxL` (True on the tokens to score). The
model sees explicit positions (counting real tokens only) and a causal mask over real tokens, so a
row's log-probs do not depend on how it was padded.

Memory: the full `[B, L, V]` logits are what runs post-training out of memory at Gemma's 256k
vocabulary. We run the transformer for hidden states only (its unused logits are dead code that
`jit` removes), then unembed only positions `>= score_start`, `C` positions at a time under
`jax.checkpoint`, so at most `[B, C, V]` logits exist at once, in the forward and backward pass.
With left-padded prompts every response starts at the same column: pass it as `score_start` and
nothing is unembedded for prompt positions.
"""

import functools

from gemma import gm
import jax
import jax.numpy as jnp

from eva_jax.parallel import activations


def positions_from_mask(input_mask_BxL: jax.Array) -> jax.Array:
  """Position of each token among its row's real tokens (0-based; padding gets a clipped value)."""
  return jnp.maximum(jnp.cumsum(input_mask_BxL, axis=-1) - 1, 0).astype(jnp.int32)


def causal_attention_mask(input_mask_BxL: jax.Array) -> jax.Array:
  """`[B, L, L]` bool: query i may attend key j iff j <= i and key j is a real token."""
  length = input_mask_BxL.shape[-1]
  causal_LxL = jnp.tril(jnp.ones((length, length), dtype=bool))
  return causal_LxL[None] & input_mask_BxL[:, None, :].astype(bool)


def hidden_states(model: gm.nn.Transformer, params, tokens_BxL, input_mask_BxL, mesh=None) -> jax.Array:
  """`[B, L, D]` final-norm hidden states (the input to the unembedding); with a `mesh`, rows stay
  split over its batch axes through every layer (`parallel.activations`)."""
  out = activations.apply(
    model,
    params,
    tokens_BxL,
    positions=positions_from_mask(input_mask_BxL),
    attention_mask=causal_attention_mask(input_mask_BxL),
    return_hidden_states=True,
    mesh=mesh,
  )
  return out.hidden_states


def unembed(module: gm.nn.Transformer, x_BxCxD: jax.Array) -> jax.Array:
  """Logits exactly as `Transformer.__call__` computes them (tied embedding, optional soft-cap)."""
  logits = module.embedder.decode(x_BxCxD)
  cap = module.config.final_logit_softcap
  if cap is not None:
    logits = jnp.tanh(logits / cap) * cap
  return logits


def token_logprobs(
  model: gm.nn.Transformer,
  params,
  tokens_BxL: jax.Array,
  input_mask_BxL: jax.Array,
  *,
  score_start: int = 1,
  chunk_size: int = 128,
  mesh: jax.sharding.Mesh | None = None,
) -> jax.Array:
  """`[B, L]` float32: entry t is log p(tokens[t] | tokens[<t]); 0 where t < score_start or padding.

  Args:
    model: the gemma module; params: its params (the inner `params` dict).
    tokens_BxL: int32 token ids; input_mask_BxL: True on real (non-padding) tokens.
    score_start: static; first column that may hold a token to score (>= 1). Columns before it
      are not unembedded at all.
    chunk_size: static; columns unembedded at once (bounds the live logits to `[B, C, V]`).
    mesh: the mesh the batch is split over, if any: activations and each chunk's logits are then
      kept split over its batch axes (`parallel.activations`), so FSDP gathers weights instead of
      all-reducing activations.
  """
  batch, length = tokens_BxL.shape
  if not 1 <= score_start < length:
    raise ValueError(f"score_start={score_start} must be in [1, {length - 1}] for length {length}")
  x_BxLxD = hidden_states(model, params, tokens_BxL, input_mask_BxL, mesh)
  # Column t is predicted from the hidden state at t - 1.
  x_BxSxD = x_BxLxD[:, score_start - 1 : length - 1]
  targets_BxS = tokens_BxL[:, score_start:]
  scored = x_BxSxD.shape[1]
  chunk = min(chunk_size, scored)
  pad = -scored % chunk
  x_BxSxD = jnp.pad(x_BxSxD, ((0, 0), (0, pad), (0, 0)))
  targets_BxS = jnp.pad(targets_BxS, ((0, 0), (0, pad)))
  num_chunks = (scored + pad) // chunk
  x_NxBxCxD = x_BxSxD.reshape(batch, num_chunks, chunk, -1).swapaxes(0, 1)
  targets_NxBxC = targets_BxS.reshape(batch, num_chunks, chunk).swapaxes(0, 1)

  @jax.checkpoint  # Recompute a chunk's logits in the backward pass instead of storing them.
  def chunk_logprobs(x_BxCxD, targets_BxC):
    x_BxCxD = activations.constrain_rows(x_BxCxD, mesh)
    logits_BxCxV = model.apply({"params": params}, x_BxCxD, method=unembed).astype(jnp.float32)
    logits_BxCxV = activations.constrain_rows(logits_BxCxV, mesh)
    target_logits = jnp.take_along_axis(logits_BxCxV, targets_BxC[..., None], axis=-1)[..., 0]
    return target_logits - jax.nn.logsumexp(logits_BxCxV, axis=-1)

  lp_NxBxC = jax.lax.map(lambda xs: chunk_logprobs(*xs), (x_NxBxCxD, targets_NxBxC))
  lp_BxS = lp_NxBxC.swapaxes(0, 1).reshape(batch, -1)[:, :scored]
  lp_BxL = jnp.pad(lp_BxS, ((0, 0), (score_start, 0)))
  return jnp.where(input_mask_BxL.astype(bool), lp_BxL, 0.0)


def sequence_logprobs(
  model: gm.nn.Transformer,
  params,
  tokens_BxL: jax.Array,
  input_mask_BxL: jax.Array,
  response_mask_BxL: jax.Array,
  *,
  score_start: int = 1,
  chunk_size: int = 128,
  mesh: jax.sharding.Mesh | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Per-sequence sum of response-token log-probs `[B]` and the per-token log-probs `[B, L]`.

  `response_mask_BxL` must be False before `score_start` (see `first_response_column`).
  """
  lp_BxL = token_logprobs(
    model, params, tokens_BxL, input_mask_BxL, score_start=score_start, chunk_size=chunk_size, mesh=mesh
  )
  lp_BxL = jnp.where(response_mask_BxL.astype(bool), lp_BxL, 0.0)
  return lp_BxL.sum(axis=-1), lp_BxL


def first_response_column(response_mask_BxL) -> int:
  """Host-side: the smallest column holding a response token (the `score_start` to pass)."""
  columns = jnp.argmax(jnp.asarray(response_mask_BxL), axis=-1)
  has_response = jnp.asarray(response_mask_BxL).any(axis=-1)
  if not bool(has_response.any()):
    raise ValueError("response mask is empty: no token to score")
  return max(1, int(jnp.min(jnp.where(has_response, columns, response_mask_BxL.shape[-1]))))


@functools.cache
def jitted_sequence_logprobs(
  model: gm.nn.Transformer, score_start: int, chunk_size: int = 128, mesh: jax.sharding.Mesh | None = None
):
  """`sequence_logprobs` jitted for one model and static settings (params/batch keep their shardings;
  with `mesh`, the rows stay split over its batch axes in every layer)."""
  return jax.jit(
    functools.partial(sequence_logprobs, model, score_start=score_start, chunk_size=chunk_size, mesh=mesh)
  )
