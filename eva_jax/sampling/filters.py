"""Logit filters and the token draw: temperature, top-k, top-p (nucleus), greedy.

Dimensions: B rows, V vocabulary. All functions are pure and jit-friendly.
"""

import jax
import jax.numpy as jnp

NEG_INF = -1e30  # Finite, so a fully masked row cannot produce NaN.


def top_k_filter(logits_BxV: jax.Array, k: int) -> jax.Array:
  """Keeps the k largest logits per row (ties at the boundary kept); k <= 0 disables."""
  if k <= 0 or k >= logits_BxV.shape[-1]:
    return logits_BxV
  kth = jax.lax.top_k(logits_BxV, k)[0][..., -1:]
  return jnp.where(logits_BxV >= kth, logits_BxV, NEG_INF)


def top_p_filter(logits_BxV: jax.Array, p: float | jax.Array) -> jax.Array:
  """Keeps the smallest set of most likely tokens whose probability reaches p (always >= 1 token)."""
  sorted_BxV = jnp.sort(logits_BxV, axis=-1)[..., ::-1]
  probs = jax.nn.softmax(sorted_BxV, axis=-1)
  mass_before = jnp.cumsum(probs, axis=-1) - probs
  keep = mass_before < p
  threshold = jnp.min(jnp.where(keep, sorted_BxV, jnp.inf), axis=-1, keepdims=True)
  return jnp.where(logits_BxV >= threshold, logits_BxV, NEG_INF)


def draw(logits_BxV: jax.Array, rng: jax.Array, *, temperature: float, top_k: int, top_p: float) -> jax.Array:
  """`[B]` int32 token ids: argmax when temperature == 0, else a draw from the filtered softmax."""
  if temperature == 0:
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)
  logits_BxV = top_k_filter(logits_BxV.astype(jnp.float32) / temperature, top_k)
  if top_p < 1.0:
    logits_BxV = top_p_filter(logits_BxV, top_p)
  return jax.random.categorical(rng, logits_BxV, axis=-1).astype(jnp.int32)
