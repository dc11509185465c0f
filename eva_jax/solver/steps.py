"""Train steps: SFT, offline preference (DPO family) and online RLOO, jitted with shardings on a mesh.

Each `make_*_step` returns `step(state, batch, rng) -> (state, metrics)`: a pure function, `jax.jit`-
ed with explicit in/out shardings (params and optimizer state as the partition rules say, batch rows
over ("data", "fsdp")), donating the state. Inside, the global batch is split into `num_micro`
micro-batches and gradients are accumulated in float32 by `lax.scan`, so a global batch of 64 fits
any device count. Losses are sums over rows (or tokens) divided by the global count, so one
micro-batch of 8 and eight of 1 give the same update.

Micro-batch m holds rows {j * M + m} (whole RLOO groups: groups {g * M + m}), so each device keeps
its own rows in every micro-batch and no data moves between devices when splitting.
"""

from collections.abc import Callable
import dataclasses
import functools

import flax
from gemma import gm
import jax
import jax.numpy as jnp
import numpy as np
import optax

from eva_jax.models import batching
from eva_jax.models import logprobs
from eva_jax.parallel import distributed
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.solver import losses
from eva_jax.solver import optim
from eva_jax.solver import rloo
from eva_jax.solver.train_state import TrainState
from eva_jax.solver.train_state import as_float32


@flax.struct.dataclass
class SequenceBatch:
  """(prompt, response) rows for SFT and RLOO. Arrays are `[B, ...]`; rows with row_mask False are padding."""

  tokens: jax.Array  # [B, L] int32, prompt left-padded, response right-padded
  input_mask: jax.Array  # [B, L] bool
  response_mask: jax.Array  # [B, L] bool, the tokens trained on
  row_mask: jax.Array  # [B] bool
  rewards: jax.Array  # [B] float32 (RLOO); zeros for SFT
  behaviour_logprobs: jax.Array  # [B, L] float32 log-probs under the sampling params (RLOO clipping)
  score_start: int = flax.struct.field(pytree_node=False, default=1)  # first response column


@flax.struct.dataclass
class PairBatch:
  """B preference pairs; axis 1 is (chosen, rejected)."""

  tokens: jax.Array  # [B, 2, L] int32
  input_mask: jax.Array  # [B, 2, L] bool
  response_mask: jax.Array  # [B, 2, L] bool
  ref_logps: jax.Array  # [B, 2] float32 reference sequence log-probs (see `with_reference_logps`)
  row_mask: jax.Array  # [B] bool
  score_start: int = flax.struct.field(pytree_node=False, default=1)


def sequence_batch(token_batch: batching.TokenBatch, rewards=None, behaviour_logprobs=None) -> SequenceBatch:
  """Host-side `SequenceBatch` from a `TokenBatch` (rewards: one per real row)."""
  rows = token_batch.tokens.shape[0]
  row_mask = np.arange(rows) < token_batch.num_real
  padded_rewards = np.zeros(rows, np.float32)
  if rewards is not None:
    rewards = np.asarray(rewards, np.float32)
    if rewards.shape != (token_batch.num_real,):
      raise ValueError(f"got {rewards.shape} rewards for {token_batch.num_real} rows")
    if not np.isfinite(rewards).all():
      bad = np.flatnonzero(~np.isfinite(rewards))[:5].tolist()
      raise ValueError(f"non-finite rewards at rows {bad}: drop or fix them before training")
    padded_rewards[: token_batch.num_real] = rewards
  if behaviour_logprobs is None:
    behaviour_logprobs = np.zeros(token_batch.tokens.shape, np.float32)
  return SequenceBatch(
    token_batch.tokens,
    token_batch.input_mask,
    token_batch.response_mask,
    row_mask,
    padded_rewards,
    np.asarray(behaviour_logprobs, np.float32),
    score_start=token_batch.score_start,
  )


def pair_batch(
  tokenizer: gm.text.Tokenizer,
  prompts,
  chosen,
  rejected,
  *,
  max_prompt_len: int | None = None,
  max_response_len: int | None = None,
  row_multiple: int = 1,
) -> PairBatch:
  """Host-side `PairBatch` from texts (reference log-probs zero until `with_reference_logps`)."""
  if not len(prompts) == len(chosen) == len(rejected):
    raise ValueError(f"{len(prompts)} prompts, {len(chosen)} chosen, {len(rejected)} rejected")
  tb = batching.make_batch(
    tokenizer,
    list(prompts) * 2,
    list(chosen) + list(rejected),
    max_prompt_len=max_prompt_len,
    max_response_len=max_response_len,
  )
  return _stack_pairs(tb, len(prompts), row_multiple)


def pair_batch_from_ids(
  prompt_ids, chosen_ids, rejected_ids, *, row_multiple: int = 1, length_multiple: int = 8
):
  """Host-side `PairBatch` from token ids (e.g. sampled responses, scored exactly as sampled)."""
  if not len(prompt_ids) == len(chosen_ids) == len(rejected_ids):
    raise ValueError(f"{len(prompt_ids)} prompts, {len(chosen_ids)} chosen, {len(rejected_ids)} rejected")
  tb = batching.layout(
    list(prompt_ids) * 2, list(chosen_ids) + list(rejected_ids), length_multiple=length_multiple
  )
  return _stack_pairs(tb, len(prompt_ids), row_multiple)


def _stack_pairs(tb: batching.TokenBatch, n: int, row_multiple: int) -> PairBatch:
  rows = -(-n // row_multiple) * row_multiple

  def stack(x):  # [2n, L] -> [rows, 2, L]
    pairs = np.stack([x[:n], x[n : 2 * n]], axis=1)
    return np.pad(pairs, ((0, rows - n), (0, 0), (0, 0)))

  return PairBatch(
    stack(tb.tokens),
    stack(tb.input_mask),
    stack(tb.response_mask),
    np.zeros((rows, 2), np.float32),
    np.arange(rows) < n,
    score_start=tb.score_start,
  )


def split_micro(x: jax.Array, num_micro: int, unit: int = 1) -> jax.Array:
  """`[B, ...]` -> `[num_micro, B // num_micro, ...]`; micro m holds units {j * num_micro + m}."""
  rows = x.shape[0]
  x = x.reshape(rows // (unit * num_micro), num_micro, unit, *x.shape[1:]).swapaxes(0, 1)
  return x.reshape(num_micro, rows // num_micro, *x.shape[3:])


def check_batch(rows: int, num_micro: int, unit: int, mesh: jax.sharding.Mesh) -> None:
  """Raises ValueError unless `rows` splits into micro-batches of whole units spread over the batch axes."""
  shards = int(np.prod([mesh.shape[a] for a in mesh_lib.BATCH_AXES]))
  if rows % (num_micro * unit):
    raise ValueError(
      f"batch of {rows} rows does not split into {num_micro} micro-batches of whole groups of {unit}"
    )
  if (rows // num_micro) % shards:
    raise ValueError(
      f"micro-batch of {rows // num_micro} rows does not divide over {shards} devices on the batch axes "
      f"(data x fsdp); pad the batch or change solver.micro_batches"
    )


MicroLoss = Callable[[dict, dict | None, object], tuple[jax.Array, jax.Array, losses.Metrics]]


def _masked_stats(metrics: losses.Metrics, mask: jax.Array) -> dict[str, jax.Array]:
  """Sums of per-row metrics over real rows; "/max" metrics as a masked max."""
  return {
    k: jnp.max(jnp.where(mask > 0, v, -jnp.inf)) if k.endswith("/max") else (v * mask).sum()
    for k, v in metrics.items()
  }


def _combine(a: dict, b: dict) -> dict:
  return {k: jnp.maximum(a[k], b[k]) if k.endswith("/max") else a[k] + b[k] for k in a}


def _train_step(
  state: TrainState,
  batch,
  rng: jax.Array,
  *,
  micro_loss: MicroLoss,
  optimizer: optax.GradientTransformation,
  opt_cfg: optim.OptimizerConfig,
  num_micro: int,
  unit: int,
  mesh: jax.sharding.Mesh,
  param_shardings,
):
  del rng  # the losses are deterministic; kept for the (state, batch, rng) step contract
  rows_sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(None, mesh_lib.BATCH_AXES))
  micro = jax.tree.map(
    lambda x: jax.lax.with_sharding_constraint(split_micro(x, num_micro, unit), rows_sharded), batch
  )

  def loss_sum(params, mb):
    loss_B, weight_B, metrics = micro_loss(params, state.ref_params, mb)
    mask = mb.row_mask.astype(jnp.float32)
    stats = _masked_stats(metrics, mask) | {
      "loss_sum": (loss_B * mask).sum(),
      "weight": (weight_B * mask).sum(),
      "rows": mask.sum(),
      "tokens": (mb.input_mask.astype(jnp.float32) * mask.reshape(-1, *[1] * (mb.input_mask.ndim - 1))).sum(),
    }
    return stats["loss_sum"], stats

  grad_fn = jax.grad(loss_sum, has_aux=True)

  def body(carry, mb):
    grads_acc, stats_acc = carry
    grads, stats = grad_fn(state.params, mb)
    grads_acc = jax.tree.map(lambda a, g: a + g.astype(jnp.float32), grads_acc, grads)
    return (grads_acc, _combine(stats_acc, stats)), None

  zeros = jax.lax.with_sharding_constraint(
    jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), state.params), param_shardings
  )
  first_stats = jax.eval_shape(lambda: loss_sum(state.params, jax.tree.map(lambda x: x[0], micro))[1])
  init_stats = {k: jnp.full((), -jnp.inf if k.endswith("/max") else 0.0, jnp.float32) for k in first_stats}
  (grads, stats), _ = jax.lax.scan(body, (zeros, init_stats), micro)

  weight = stats.pop("weight")
  rows = stats.pop("rows")
  scale = jnp.where(weight > 0, 1.0 / weight, 0.0)
  grads = jax.tree.map(lambda g: g * scale, grads)
  params32 = as_float32(state.params)
  updates, opt_state = optimizer.update(grads, state.opt_state, params32)
  lr = optim.learning_rate(opt_cfg, state.step, state.total_steps)
  updates = jax.tree.map(lambda u: u * lr, updates)
  params = jax.tree.map(lambda p, p32, u: (p32 + u).astype(p.dtype), state.params, params32, updates)
  metrics = {k: v if k.endswith("/max") else v / jnp.maximum(rows, 1) for k, v in stats.items()}
  metrics |= {
    "loss": stats["loss_sum"] * scale,
    "tokens": stats["tokens"],
    "grad_norm": optax.global_norm(grads),
    "skipped_nonfinite": (~jnp.isfinite(stats["loss_sum"]) | ~jnp.isfinite(optax.global_norm(grads))).astype(
      jnp.float32
    ),
  }
  metrics.pop("loss_sum")
  metrics["learning_rate"] = lr
  new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state)
  return new_state, metrics


def _jit_step(micro_loss, *, opt_cfg, state_shardings: TrainState, mesh, num_micro, unit):
  fn = functools.partial(
    _train_step,
    micro_loss=micro_loss,
    optimizer=optim.make_optimizer(opt_cfg),
    opt_cfg=opt_cfg,
    num_micro=num_micro,
    unit=unit,
    mesh=mesh,
    param_shardings=state_shardings.params,
  )
  rows = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh_lib.BATCH_AXES))
  replicated = partition.replicated(mesh)
  jitted = jax.jit(
    fn,
    in_shardings=(state_shardings, rows, replicated),
    out_shardings=(state_shardings, replicated),
    donate_argnums=0,
  )

  def step(state: TrainState, batch, rng: jax.Array):
    check_batch(batch.row_mask.shape[0], num_micro, unit, mesh)
    # Every process holds the same global host batch; jit takes host arrays only for a sharding on
    # this process's devices, so place it explicitly.
    batch = jax.device_put(batch, rows)
    return jitted(state, batch, rng)

  step.jitted = jitted
  return step


@dataclasses.dataclass(frozen=True)
class StepSettings:
  """What every step factory needs besides its loss."""

  model: gm.nn.Transformer
  opt_cfg: optim.OptimizerConfig  # the optimizer and its schedule (length: TrainState.total_steps)
  state_shardings: TrainState
  mesh: jax.sharding.Mesh
  num_micro: int = 1  # gradient-accumulation micro-batches per step
  chunk_size: int = 128  # log-prob columns unembedded at once


def _sequence_token_logprobs(settings: StepSettings, params, mb):
  _, lp = logprobs.sequence_logprobs(
    settings.model,
    params,
    mb.tokens,
    mb.input_mask,
    mb.response_mask,
    score_start=mb.score_start,
    chunk_size=settings.chunk_size,
    mesh=settings.mesh,
  )
  return lp


def make_sft_step(settings: StepSettings):
  """Token-level NLL on response tokens (mean over every response token of the global batch)."""

  def micro_loss(params, ref_params, mb: SequenceBatch):
    del ref_params
    lp = _sequence_token_logprobs(settings, params, mb)
    num_tokens = mb.response_mask.sum(-1).astype(jnp.float32)
    nll_B = -lp.sum(-1)
    return nll_B, num_tokens, {"nll": nll_B / jnp.maximum(num_tokens, 1)}

  return _jit_step(micro_loss, **_common(settings), unit=1)


def _common(settings: StepSettings) -> dict:
  return dict(
    opt_cfg=settings.opt_cfg,
    state_shardings=settings.state_shardings,
    mesh=settings.mesh,
    num_micro=settings.num_micro,
  )


def pair_sequence_logprobs(
  model, params, mb: PairBatch, chunk_size: int, mesh: jax.sharding.Mesh | None = None
) -> tuple[jax.Array, jax.Array]:
  """`[b, 2]` sequence log-probs and `[b, 2]` response lengths; chosen and rejected in one forward
  (rows kept split over `mesh`'s batch axes: `parallel.activations`)."""
  b, _, length = mb.tokens.shape
  flat = lambda x: x.reshape(2 * b, length)
  seq, _ = logprobs.sequence_logprobs(
    model,
    params,
    flat(mb.tokens),
    flat(mb.input_mask),
    flat(mb.response_mask),
    score_start=mb.score_start,
    chunk_size=chunk_size,
    mesh=mesh,
  )
  return seq.reshape(b, 2), mb.response_mask.sum(-1).astype(jnp.float32)


def make_preference_step(
  settings: StepSettings, loss: str, hparams: losses.PreferenceHParams, nll_weight: float = 0.0
):
  """A DPO-family step (`loss` in losses.LOSSES) on `PairBatch`es carrying reference log-probs.

  `nll_weight` > 0 adds that multiple of the chosen responses' per-token NLL (keeps DPO from
  unlearning what the model already does right on small pair sets).
  """
  loss_fn = losses.LOSSES[loss]

  def micro_loss(params, ref_params, mb: PairBatch):
    del ref_params
    seq, lengths = pair_sequence_logprobs(settings.model, params, mb, settings.chunk_size, settings.mesh)
    pair = losses.PairLogps(
      seq[:, 0], seq[:, 1], mb.ref_logps[:, 0], mb.ref_logps[:, 1], lengths[:, 0], lengths[:, 1]
    )
    loss_B, metrics = loss_fn(pair, hparams)
    if nll_weight > 0:
      loss_B = loss_B + nll_weight * -pair.avg_chosen
      metrics = metrics | {"nll/chosen": -pair.avg_chosen}
    return loss_B, jnp.ones_like(loss_B), metrics

  return _jit_step(micro_loss, **_common(settings), unit=1)


def make_rloo_step(settings: StepSettings, hparams: rloo.RlooHParams):
  """An RLOO step on `SequenceBatch`es of k consecutive samples per prompt; needs `state.ref_params`."""

  def micro_loss(params, ref_params, mb: SequenceBatch):
    if ref_params is None:
      raise ValueError("RLOO needs the reference params in TrainState.ref_params")
    lp = _sequence_token_logprobs(settings, params, mb)
    ref_lp = jax.lax.stop_gradient(_sequence_token_logprobs(settings, ref_params, mb))
    loss_B, metrics = rloo.rloo_loss(
      lp, ref_lp, mb.behaviour_logprobs, mb.response_mask, mb.rewards, mb.row_mask, hparams
    )
    return loss_B, jnp.ones_like(loss_B), metrics

  return _jit_step(micro_loss, **_common(settings), unit=hparams.k)


@functools.cache
def _jitted_pair_logprobs(model, chunk_size: int, mesh: jax.sharding.Mesh):
  return jax.jit(lambda params, mb: pair_sequence_logprobs(model, params, mb, chunk_size, mesh)[0])


def with_reference_logps(
  model: gm.nn.Transformer, ref_params, batch: PairBatch, mesh: jax.sharding.Mesh, chunk_size: int = 128
) -> PairBatch:
  """`batch` with `ref_logps` from the frozen reference params: computed once per pair set, so no
  second model runs during the epochs."""
  place = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh_lib.BATCH_AXES))
  device_batch = jax.device_put(batch, place)
  ref = distributed.to_host(_jitted_pair_logprobs(model, chunk_size, mesh)(ref_params, device_batch))
  return batch.replace(ref_logps=np.asarray(ref, np.float32))
