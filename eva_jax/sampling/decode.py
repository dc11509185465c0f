"""The pure, jitted prefill + decode loop over the gemma library's KV cache.

Dimensions: B prompts, N samples per prompt, R = B * N rows, P prompt columns (prompts are
left-padded, so every prompt ends at column P - 1), T max new tokens, S = P + T cache length,
V vocabulary.

Each prompt is prefilled once; its cache rows are then repeated N times and the N continuations
decode from the shared prefix (row r belongs to prompt r // N). The loop ends once every row has
emitted a stop token or T tokens. Returned log-probs are the model's own (temperature 1, no
filtering): the policy log-probs RLOO and the KL terms need, whatever the sampling settings.
"""

import dataclasses
import functools

from gemma import gm
import jax
import jax.numpy as jnp

from eva_jax.models import logprobs
from eva_jax.parallel import activations
from eva_jax.sampling import filters


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
  """Static settings: each distinct value compiles its own program."""

  num_samples: int  # N continuations per prompt
  max_new_tokens: int  # T
  temperature: float  # 0 = greedy
  top_k: int  # 0 = off
  top_p: float  # 1.0 = off
  stop_tokens: tuple[int, ...]  # ids that end a sequence (kept in the output)
  pad_id: int = 0
  min_cache_length: int = 0  # S = max(P + T, this); > P + T only to compare with fixed-cache samplers


def _unembed_last(model, params, hidden_BxLxD):
  return model.apply({"params": params}, hidden_BxLxD[:, -1:], method=logprobs.unembed)[:, 0]


def generate(
  model: gm.nn.Transformer,
  params,
  prompt_BxP,
  prompt_mask_BxP,
  rng,
  settings: DecodeSettings,
  mesh: jax.sharding.Mesh | None = None,
):
  """Samples continuations. Returns a dict of `[R, T]` tokens/logprobs and `[R]` lengths/stopped.

  With a `mesh`, the rows stay split over its batch axes in every layer (`parallel.activations`)."""
  batch, prompt_cols = prompt_BxP.shape
  n, steps = settings.num_samples, settings.max_new_tokens
  cache_len = max(prompt_cols + steps, settings.min_cache_length)
  spare = cache_len - prompt_cols  # empty cache columns after the prompt
  rows = batch * n
  dtype = jax.tree.leaves(params)[0].dtype
  cache = model.config.init_cache(batch_size=batch, dtype=dtype, cache_length=cache_len)

  # Prefill: causal attention over real prompt tokens; cache columns >= P are still empty.
  prefill_mask = jnp.pad(logprobs.causal_attention_mask(prompt_mask_BxP), ((0, 0), (0, 0), (0, spare)))
  out = activations.apply(
    model,
    params,
    prompt_BxP,
    positions=logprobs.positions_from_mask(prompt_mask_BxP),
    cache=cache,
    attention_mask=prefill_mask,
    return_hidden_states=True,
    mesh=mesh,
  )
  logits_RxV = jnp.repeat(_unembed_last(model, params, out.hidden_states), n, axis=0)
  cache = jax.tree.map(lambda x: jnp.repeat(x, n, axis=0), out.cache)
  key_mask_RxS = jnp.repeat(jnp.pad(prompt_mask_BxP.astype(bool), ((0, 0), (0, spare))), n, axis=0)
  next_position_R = jnp.repeat(prompt_mask_BxP.sum(axis=-1).astype(jnp.int32), n, axis=0)
  stop_ids = jnp.asarray(settings.stop_tokens, jnp.int32)

  def cond(state):
    step, *_, done_R, _ = state
    return (step < steps) & ~jnp.all(done_R)

  def body(state):
    step, cache, logits_RxV, key_mask_RxS, tokens_RxT, lps_RxT, done_R, rng = state
    rng, draw_rng = jax.random.split(rng)
    token_R = filters.draw(
      logits_RxV, draw_rng, temperature=settings.temperature, top_k=settings.top_k, top_p=settings.top_p
    )
    lp_R = jnp.take_along_axis(jax.nn.log_softmax(logits_RxV.astype(jnp.float32)), token_R[:, None], axis=-1)[
      :, 0
    ]
    token_R = jnp.where(done_R, settings.pad_id, token_R)
    tokens_RxT = tokens_RxT.at[:, step].set(token_R)
    lps_RxT = lps_RxT.at[:, step].set(jnp.where(done_R, 0.0, lp_R))
    # The new token becomes a key for later steps (rows already done only attend padding: unused).
    key_mask_RxS = key_mask_RxS.at[:, prompt_cols + step].set(~done_R)
    done_R = done_R | jnp.isin(token_R, stop_ids)
    out = activations.apply(
      model,
      params,
      token_R[:, None],
      positions=(next_position_R + step)[:, None],
      cache=cache,
      attention_mask=key_mask_RxS[:, None, :],
      return_hidden_states=True,
      mesh=mesh,
    )
    logits_RxV = _unembed_last(model, params, out.hidden_states)
    return step + 1, out.cache, logits_RxV, key_mask_RxS, tokens_RxT, lps_RxT, done_R, rng

  state = (
    jnp.int32(0),
    cache,
    logits_RxV,
    key_mask_RxS,
    jnp.full((rows, steps), settings.pad_id, jnp.int32),
    jnp.zeros((rows, steps), jnp.float32),
    jnp.zeros((rows,), bool),
    rng,
  )
  _, _, _, _, tokens_RxT, lps_RxT, done_R, _ = jax.lax.while_loop(cond, body, state)
  is_stop = jnp.isin(tokens_RxT, stop_ids)
  first_stop_R = jnp.argmax(is_stop, axis=-1)
  lengths_R = jnp.where(done_R, first_stop_R + 1, steps)
  return {"tokens": tokens_RxT, "logprobs": lps_RxT, "lengths": lengths_R, "stopped": done_R}


@functools.cache
def jitted_generate(
  model: gm.nn.Transformer, settings: DecodeSettings, mesh: jax.sharding.Mesh | None = None
):
  """`generate` jitted for one model, settings and mesh; shapes are bucketed by the caller."""
  return jax.jit(functools.partial(generate, model, settings=settings, mesh=mesh))
