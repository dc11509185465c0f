"""RLOO (REINFORCE leave-one-out; Ahmadian et al. 2024) on per-token log-probs of sampled responses.

Rows come in groups of k consecutive samples of the same prompt. For row i of a group:

    r'_i  = r_i - beta * KL_i,        KL_i = sum_t [log pi(y_t) - log ref(y_t)]   (sampled tokens)
    A_i   = r'_i - mean_{j != i} r'_j = k / (k - 1) * (r'_i - mean_j r'_j)
    loss  = -A_i * log pi(y_i)                                                    (REINFORCE)

The KL estimate and the advantages carry no gradient (they are part of the reward). With
`clip_eps > 0` (several updates on one batch) the sequence term becomes the token-level clipped
surrogate -sum_t min(rho_t A_i, clip(rho_t, 1 - eps, 1 + eps) A_i), rho_t = pi(y_t) / mu(y_t)
against the behaviour policy mu that sampled; at rho = 1 its gradient is exactly REINFORCE's.
Padding rows must come as whole groups (row_mask False) and get zero advantage.
"""

import dataclasses

import jax
import jax.numpy as jnp

from eva_jax.solver.losses import Metrics


@dataclasses.dataclass(frozen=True)
class RlooHParams:
  k: int = 4  # samples per prompt (group size)
  beta: float = 0.05  # weight of the sequence KL to the reference folded into the reward
  clip_eps: float = 0.0  # > 0: token-level importance clipping against the behaviour log-probs


def leave_one_out_advantages(rewards_B: jax.Array, k: int) -> jax.Array:
  """A_i = r_i - mean of the other k - 1 rewards of its group; `[B]` with B a multiple of k."""
  if k < 2:
    raise ValueError(f"RLOO needs k >= 2 samples per prompt, got {k}")
  groups = rewards_B.reshape(-1, k)
  others_mean = (groups.sum(axis=1, keepdims=True) - groups) / (k - 1)
  return (groups - others_mean).reshape(-1)


def rloo_loss(
  policy_lp_BxL: jax.Array,
  ref_lp_BxL: jax.Array,
  behaviour_lp_BxL: jax.Array,
  response_mask_BxL: jax.Array,
  rewards_B: jax.Array,
  row_mask_B: jax.Array,
  hp: RlooHParams,
) -> tuple[jax.Array, Metrics]:
  """Per-row loss `[B]` and per-row metrics `[B]` (the step takes masked means; "/max" keys a max).

  Args:
    policy_lp_BxL: log pi of each sampled token (differentiated); 0 off the response.
    ref_lp_BxL: the reference's log-probs of the same tokens.
    behaviour_lp_BxL: log-probs under the params that sampled (only read when clip_eps > 0).
    response_mask_BxL: True on response tokens. rewards_B: task/RM reward per row (finite).
    row_mask_B: False on padding rows (whole padding groups).
  """
  mask = response_mask_BxL.astype(jnp.float32)
  valid = row_mask_B.astype(jnp.float32)
  policy_seq = (policy_lp_BxL * mask).sum(-1)
  kl_B = jax.lax.stop_gradient(((policy_lp_BxL - ref_lp_BxL) * mask).sum(-1))
  shaped = rewards_B - hp.beta * kl_B
  adv_B = jax.lax.stop_gradient(leave_one_out_advantages(shaped, hp.k)) * valid
  if hp.clip_eps > 0:
    # Masked before the exponential: padding log-probs are arbitrary, and exp of a large difference
    # there is inf, which a multiply by the mask turns into NaN (inf * 0) in the loss and its gradient.
    ratio = jnp.exp(jnp.where(response_mask_BxL, policy_lp_BxL - behaviour_lp_BxL, 0.0))
    clipped = jnp.clip(ratio, 1.0 - hp.clip_eps, 1.0 + hp.clip_eps)
    surrogate = jnp.minimum(ratio * adv_B[:, None], clipped * adv_B[:, None])
    loss_B = -(surrogate * mask).sum(-1)
    clip_frac = ((jnp.abs(ratio - 1.0) > hp.clip_eps) * mask).sum(-1) / jnp.maximum(mask.sum(-1), 1)
  else:
    loss_B = -adv_B * policy_seq
    clip_frac = jnp.zeros_like(loss_B)
  groups = rewards_B.reshape(-1, hp.k)
  zero_var = jnp.repeat(jnp.all(groups == groups[:, :1], axis=1), hp.k).astype(jnp.float32)
  num_tokens = jnp.maximum(mask.sum(-1), 1)
  metrics = {
    "reward/mean": rewards_B,
    "reward/shaped_mean": shaped,
    "reward/group_std": jnp.repeat(groups.std(axis=1), hp.k),
    "reward/max": rewards_B,
    "advantage/mean": adv_B,
    "advantage/mean_abs": jnp.abs(adv_B),
    "advantage/max": adv_B,
    "kl": kl_B,
    "zero_variance_groups": zero_var,
    # Mean negative log-prob of the sampled tokens: a one-sample estimate of per-token entropy.
    "entropy": -policy_seq / num_tokens,
    "response_length": mask.sum(-1),
    "clip_frac": clip_frac,
  }
  return loss_B, metrics
