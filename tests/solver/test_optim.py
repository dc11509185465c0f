"""The unit-lr optimizer scaled by `optim.learning_rate` equals optax's scheduled optimizers."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from eva_jax.solver import optim


def _optax_schedule(cfg: optim.OptimizerConfig, total: int) -> optax.Schedule:
  warmup = int(round(cfg.warmup_frac * total))
  decay = max(total - warmup, 1)
  after = {
    "cosine": optax.cosine_decay_schedule(cfg.learning_rate, decay),
    "linear": optax.linear_schedule(cfg.learning_rate, 0.0, decay),
    "constant": optax.constant_schedule(cfg.learning_rate),
  }[cfg.schedule]
  if warmup == 0:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, cfg.learning_rate, warmup), after], [warmup])


@pytest.mark.parametrize("name", optim.SCHEDULES)
@pytest.mark.parametrize("total", [1, 7, 40, 333])
def test_learning_rate_equals_optax_join_of_warmup_and_decay(name, total):
  cfg = optim.OptimizerConfig(learning_rate=3e-4, schedule=name, warmup_frac=0.1)
  ours = jax.jit(lambda s, t: optim.learning_rate(cfg, s, t))  # one program for every total
  reference = _optax_schedule(cfg, total)
  for step in range(total + 2):
    np.testing.assert_allclose(
      float(ours(step, total)), float(reference(step)), rtol=1e-5, atol=1e-6 * cfg.learning_rate
    )


@pytest.mark.parametrize("name", optim.OPTIMIZERS)
def test_unit_optimizer_scaled_by_the_schedule_equals_the_scheduled_optax_optimizer(name):
  cfg = optim.OptimizerConfig(
    name=name, learning_rate=1e-2, weight_decay=0.1, warmup_frac=0.2, max_grad_norm=0
  )
  total = 10
  lr = _optax_schedule(cfg, total)
  reference = {
    "adamw": optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay),
    "rmsprop": optax.rmsprop(lr, decay=cfg.b2, eps=cfg.eps),
    "sgd": optax.sgd(lr),
  }[name]
  ours = optim.make_optimizer(cfg)
  rng = np.random.default_rng(0)
  params = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}
  p_ref, p_ours = params, params
  s_ref, s_ours = reference.init(params), ours.init(params)
  for step in range(total):
    grads = {"w": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)}
    u_ref, s_ref = reference.update(grads, s_ref, p_ref)
    u_ours, s_ours = ours.update(grads, s_ours, p_ours)
    scale = optim.learning_rate(cfg, step, total)
    p_ref = optax.apply_updates(p_ref, u_ref)
    p_ours = optax.apply_updates(p_ours, {"w": u_ours["w"] * scale})
  np.testing.assert_allclose(p_ours["w"], p_ref["w"], rtol=1e-5, atol=1e-7)
  assert not np.allclose(p_ours["w"], params["w"])  # the steps moved the params
