"""Bradley-Terry reward-model training: loss -log sigmoid(r_chosen - r_rejected), AdamW, one jitted step.

A batch is four `[B, L]` arrays: chosen tokens and mask, rejected tokens and mask (row i of each is
one preference pair, both laid out by `batching.make_batch` over the same columns). Chosen and
rejected rows go through the backbone together, as one `[2B, L]` batch.
"""

import functools

from gemma import gm
import jax
import jax.numpy as jnp
import optax

from eva_jax.parallel import partition
from eva_jax.rewards import reward_model
from eva_jax.rewards.config import TrainingConfig


def loss_fn(
  model: gm.nn.Transformer, params: dict, batch: tuple, mesh: jax.sharding.Mesh | None = None
) -> tuple[jax.Array, dict]:
  """Mean Bradley-Terry loss of a batch, and its pairwise accuracy and mean reward margin."""
  chosen_tokens, chosen_mask, rejected_tokens, rejected_mask = batch
  tokens = jnp.concatenate([chosen_tokens, rejected_tokens])
  mask = jnp.concatenate([chosen_mask, rejected_mask])
  r_chosen, r_rejected = jnp.split(reward_model.rewards(model, params, tokens, mask, mesh), 2)
  margin = r_chosen - r_rejected
  loss = -jax.nn.log_sigmoid(margin).mean()
  return loss, {"loss": loss, "accuracy": (margin > 0).mean(), "margin": margin.mean()}


def make_optimizer(cfg: TrainingConfig) -> optax.GradientTransformation:
  """AdamW with linear warm-up and cosine decay to zero; global-norm clipping unless 0."""
  schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.learning_rate, cfg.warmup_steps, cfg.steps)
  adamw = optax.adamw(schedule, weight_decay=cfg.weight_decay)
  return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), adamw) if cfg.max_grad_norm else adamw


def train_step(
  model, optimizer, params: dict, opt_state, batch: tuple, mesh: jax.sharding.Mesh | None = None
):
  """One AdamW step on the Bradley-Terry loss: `(params, opt_state, metrics)`."""
  grads, metrics = jax.grad(functools.partial(loss_fn, model, mesh=mesh), has_aux=True)(params, batch)
  updates, opt_state = optimizer.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, metrics


def jitted_train_step(model, optimizer, mesh: jax.sharding.Mesh, rules=partition.DEFAULT_RULES):
  """`(step_fn, param_shardings, opt_shardings)`; step_fn donates params and optimizer state.

  Optimizer moments are sharded like the params they track; step counts are replicated.
  """
  param_shardings = reward_model.shardings_for(model, mesh, rules)
  opt_shardings = optax.tree_utils.tree_map_params(
    optimizer,
    lambda _, sharding: sharding,
    jax.eval_shape(optimizer.init, reward_model.abstract_params(model)),
    param_shardings,
    transform_non_params=lambda _: partition.replicated(mesh),
  )
  batch = (partition.batch_sharding(mesh),) * 4
  step = jax.jit(
    functools.partial(train_step, model, optimizer, mesh=mesh),
    in_shardings=(param_shardings, opt_shardings, batch),
    out_shardings=(param_shardings, opt_shardings, partition.replicated(mesh)),
    donate_argnums=(0, 1),
  )
  return step, param_shardings, opt_shardings
