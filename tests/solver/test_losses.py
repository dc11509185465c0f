"""Preference and RLOO losses against their papers' formulas, edge cases and finite differences."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eva_jax.solver import losses
from eva_jax.solver import rloo

HP = losses.PreferenceHParams(beta=0.1, label_smoothing=0.2, simpo_gamma=0.5, orpo_lambda=0.3)


def _log_sigmoid(x):
  return -np.logaddexp(0.0, -x)


def _reference(name, pc, pr, rc, rr, lc, lr, hp):
  """The losses written directly from the papers, in float64 NumPy."""
  h = (pc - rc) - (pr - rr)
  if name == "dpo":
    return -_log_sigmoid(hp.beta * h)
  if name == "cdpo":
    eps = hp.label_smoothing
    return -(1 - eps) * _log_sigmoid(hp.beta * h) - eps * _log_sigmoid(-hp.beta * h)
  if name == "ipo":
    if hp.ipo_per_token:  # TRL's DPOTrainer: IPO's log-probs are per-token averages
      h = (pc - rc) / lc - (pr - rr) / lr
    return (h - 1 / (2 * hp.beta)) ** 2
  if name == "sppo":
    return (pc - rc - 1 / (2 * hp.beta)) ** 2 + (pr - rr + 1 / (2 * hp.beta)) ** 2
  if name == "simpo":
    return -_log_sigmoid(hp.beta * pc / lc - hp.beta * pr / lr - hp.simpo_gamma)
  if name == "orpo":
    p_c, p_r = np.exp(pc / lc), np.exp(pr / lr)
    odds = np.log(p_c / (1 - p_c)) - np.log(p_r / (1 - p_r))
    return -pc / lc - hp.orpo_lambda * _log_sigmoid(odds)
  raise AssertionError(name)


def _pairs(rng, n=16):
  lc, lr = rng.integers(1, 40, n).astype(np.float64), rng.integers(1, 40, n).astype(np.float64)
  pc, pr = -rng.uniform(0.05, 3.0, n) * lc, -rng.uniform(0.05, 3.0, n) * lr
  rc, rr = pc + rng.normal(0, 2, n), pr + rng.normal(0, 2, n)
  return pc, pr, rc, rr, lc, lr


def _logps(*arrays):
  return losses.PairLogps(*(jnp.asarray(a, jnp.float32) for a in arrays))


@pytest.mark.parametrize("name", ["dpo", "cdpo", "ipo", "sppo", "simpo", "orpo"])
def test_loss_matches_paper_formula(name):
  hp = HP if name == "cdpo" else HP.__class__(**{**HP.__dict__, "label_smoothing": 0.0})
  values = _pairs(np.random.default_rng(0))
  ours, metrics = losses.LOSSES[name](_logps(*values), hp)
  np.testing.assert_allclose(np.asarray(ours), _reference(name, *values, hp), rtol=2e-5, atol=1e-5)
  assert set(metrics) >= {"rewards/chosen", "rewards/rejected", "rewards/margin", "rewards/accuracy"}
  np.testing.assert_allclose(
    metrics["rewards/margin"], metrics["rewards/chosen"] - metrics["rewards/rejected"]
  )


def test_ipo_sums_when_asked_and_the_forms_differ():
  values = _pairs(np.random.default_rng(1))
  summed = dataclasses.replace(HP, label_smoothing=0.0, ipo_per_token=False)
  ours, _ = losses.ipo(_logps(*values), summed)
  np.testing.assert_allclose(np.asarray(ours), _reference("ipo", *values, summed), rtol=2e-5, atol=1e-5)
  per_token, _ = losses.ipo(_logps(*values), dataclasses.replace(summed, ipo_per_token=True))
  assert not np.allclose(ours, per_token)  # lengths 1..39: the conventions really differ


def test_dpo_metrics_are_implicit_rewards():
  pc, pr, rc, rr, lc, lr = _pairs(np.random.default_rng(1))
  _, m = losses.dpo(_logps(pc, pr, rc, rr, lc, lr), HP)
  np.testing.assert_allclose(m["rewards/chosen"], 0.1 * (pc - rc), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(m["rewards/accuracy"], (pc - rc > pr - rr).astype(float))
  np.testing.assert_allclose(m["logps/chosen"], pc, rtol=1e-6)


@pytest.mark.parametrize("name", ["dpo", "cdpo", "ipo", "sppo", "simpo", "orpo"])
def test_equal_chosen_and_rejected(name):
  x = jnp.full((3,), -12.0)
  n = jnp.full((3,), 6.0)
  loss, m = losses.LOSSES[name](losses.PairLogps(x, x, x, x, n, n), HP)
  assert np.all(np.isfinite(loss))
  np.testing.assert_allclose(m["rewards/margin"], 0.0)
  if name in ("dpo", "cdpo"):
    np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-6)
  if name == "ipo":
    np.testing.assert_allclose(loss, (1 / (2 * HP.beta)) ** 2, rtol=1e-6)


@pytest.mark.parametrize("name", ["dpo", "cdpo", "ipo", "sppo", "simpo", "orpo"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_huge_margins_stay_finite(name, sign):
  big = jnp.array([-1e-9, -1e4, -3e4])
  small = big - sign * 1e5
  n = jnp.array([1.0, 50.0, 2000.0])
  values = losses.PairLogps(big, small, small, big, n, n)
  loss, metrics = losses.LOSSES[name](values, HP)
  grads = jax.grad(lambda v: losses.LOSSES[name](v, HP)[0].sum())(values)
  assert np.all(np.isfinite(loss)), loss
  assert all(np.all(np.isfinite(v)) for v in metrics.values())
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", ["dpo", "cdpo", "ipo", "sppo", "simpo", "orpo"])
def test_gradient_matches_finite_differences(name):
  with jax.enable_x64(True):
    values = _pairs(np.random.default_rng(2), n=4)
    hp = HP
    f = lambda pc, pr: losses.LOSSES[name](
      losses.PairLogps(pc, pr, *(jnp.asarray(v) for v in values[2:])), hp
    )[0].sum()
    pc, pr = jnp.asarray(values[0]), jnp.asarray(values[1])
    g_c, g_r = jax.grad(f, argnums=(0, 1))(pc, pr)
    eps = 1e-6
    for i in range(4):
      e = jnp.zeros(4).at[i].set(eps)
      np.testing.assert_allclose(g_c[i], (f(pc + e, pr) - f(pc - e, pr)) / (2 * eps), rtol=1e-5, atol=1e-8)
      np.testing.assert_allclose(g_r[i], (f(pc, pr + e) - f(pc, pr - e)) / (2 * eps), rtol=1e-5, atol=1e-8)


def test_leave_one_out_advantages_by_hand():
  rewards = jnp.array([1.0, 0.0, 0.5, 0.5, 2.0, 2.0, 2.0, 2.0])
  adv = np.asarray(rloo.leave_one_out_advantages(rewards, 4))
  np.testing.assert_allclose(adv[:4], [1 - 1 / 3, 0 - 2 / 3, 0.5 - 1.5 / 3, 0.5 - 1.5 / 3], rtol=1e-6)
  np.testing.assert_allclose(adv[4:], 0.0)
  with pytest.raises(ValueError, match="k >= 2"):
    rloo.leave_one_out_advantages(rewards, 1)


def _rloo_inputs(rng, k=3, groups=2, length=6):
  b = k * groups
  mask = np.zeros((b, length), bool)
  for i in range(b):
    mask[i, : rng.integers(2, length + 1)] = True
  lp = -rng.uniform(0.1, 2.0, (b, length)) * mask
  ref = (lp + rng.normal(0, 0.3, (b, length))) * mask
  rewards = rng.uniform(0, 1, b)
  return lp, ref, mask, rewards


def test_rloo_loss_by_hand():
  rng = np.random.default_rng(3)
  lp, ref, mask, rewards = _rloo_inputs(rng)
  hp = rloo.RlooHParams(k=3, beta=0.2)
  loss, m = rloo.rloo_loss(
    *(jnp.asarray(x, jnp.float32) for x in (lp, ref, lp, mask, rewards)), jnp.ones(6, bool), hp
  )
  kl = ((lp - ref) * mask).sum(1)
  shaped = (rewards - 0.2 * kl).reshape(2, 3)
  adv = (shaped - (shaped.sum(1, keepdims=True) - shaped) / 2).reshape(-1)
  np.testing.assert_allclose(loss, -adv * (lp * mask).sum(1), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(m["kl"], kl, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(m["advantage/mean"], adv, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(m["entropy"], -(lp * mask).sum(1) / mask.sum(1), rtol=1e-5)
  np.testing.assert_allclose(m["zero_variance_groups"], 0.0)


def test_rloo_clipped_gradient_equals_reinforce_on_policy_and_clips_off_policy():
  rng = np.random.default_rng(4)
  lp, ref, mask, rewards = (jnp.asarray(x, jnp.float32) for x in _rloo_inputs(rng))
  valid = jnp.ones(6, bool)
  plain = rloo.RlooHParams(k=3, beta=0.1)
  clipped = rloo.RlooHParams(k=3, beta=0.1, clip_eps=0.2)
  grad = lambda hp, behaviour: jax.grad(
    lambda p: rloo.rloo_loss(p, ref, behaviour, mask, rewards, valid, hp)[0].sum()
  )(lp)
  np.testing.assert_allclose(grad(clipped, lp), grad(plain, lp), rtol=1e-5, atol=1e-6)
  # Far off-policy tokens (ratio e^2 or e^-2) fall outside [0.8, 1.2]: their gradient is cut on the
  # side the clip guards (positive advantage with ratio > 1.2, negative with ratio < 0.8).
  behaviour = lp - 2.0 * jnp.where(jnp.arange(6)[:, None] % 2 == 0, 1.0, -1.0)
  _, m = rloo.rloo_loss(lp, ref, behaviour, mask, rewards, valid, clipped)
  np.testing.assert_allclose(m["clip_frac"], 1.0)
  g = np.asarray(grad(clipped, behaviour))
  adv = np.asarray(m["advantage/mean"])
  ratio_high = np.arange(6) % 2 == 0
  cut = (ratio_high & (adv > 0)) | (~ratio_high & (adv < 0))
  assert cut.any() and (~cut).any()
  np.testing.assert_allclose(g[cut], 0.0)
  assert np.all(np.abs(g[~cut][np.asarray(mask)[~cut] > 0]) > 0)


def test_rloo_clipped_loss_ignores_padding_log_probs():
  """Padding positions can hold any log-probs; an overflow there must not reach the loss or its gradient."""
  rng = np.random.default_rng(6)
  lp, ref, mask, rewards = (jnp.asarray(x, jnp.float32) for x in _rloo_inputs(rng))
  valid = jnp.ones(6, bool)
  hp = rloo.RlooHParams(k=3, beta=0.1, clip_eps=0.2)
  behaviour = lp - 0.05
  garbage = jnp.where(mask, behaviour, -1000.0)  # exp(lp - behaviour) = exp(1000) = inf off the response
  loss_fn = lambda p, b: rloo.rloo_loss(p, ref, b, mask, rewards, valid, hp)[0]
  np.testing.assert_allclose(loss_fn(lp, garbage), loss_fn(lp, behaviour), rtol=1e-6)
  grad = jax.grad(lambda p: loss_fn(p, garbage).sum())(lp)
  assert np.isfinite(np.asarray(grad)).all()
  np.testing.assert_allclose(grad, jax.grad(lambda p: loss_fn(p, behaviour).sum())(lp), rtol=1e-6)
  np.testing.assert_allclose(np.asarray(grad)[np.asarray(mask) == 0], 0.0)


def test_rloo_padding_groups_and_zero_variance():
  rng = np.random.default_rng(5)
  lp, ref, mask, _ = (jnp.asarray(x, jnp.float32) for x in _rloo_inputs(rng))
  rewards = jnp.array([0.5, 0.5, 0.5, 1.0, 0.0, 0.0])
  valid = jnp.array([True, True, True, False, False, False])
  loss, m = rloo.rloo_loss(lp, ref, lp, mask, rewards, valid, rloo.RlooHParams(k=3, beta=0.0))
  np.testing.assert_allclose(loss, 0.0)  # first group has no variance, second is padding
  np.testing.assert_allclose(m["zero_variance_groups"][:3], 1.0)
