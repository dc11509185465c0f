"""Optimizers and learning-rate schedules from the solver config (optax).

AdamW is the default (the paper's DPO runs); RMSprop is what the eva authors used for SPPO. The
schedule warms up linearly over `warmup_frac` of the steps, then decays (cosine or linear) or stays
constant; gradients are clipped by global norm first, and a step with non-finite gradients is
skipped (optax.apply_if_finite).

The optimizer is built with a unit learning rate and the train step scales its update by
`learning_rate(cfg, step, total_steps)`, with the run's length held in the train state: a phase's
length is data, not a constant of the compiled program, so one program serves every round's
pair count (optax's `add_decayed_weights` comes before the learning-rate scaling, so AdamW's decay
is scaled exactly as `optax.adamw(schedule)` scales it).
"""

import dataclasses

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("adamw", "rmsprop", "sgd")
SCHEDULES = ("cosine", "linear", "constant")
MAX_CONSECUTIVE_NONFINITE = 1_000_000  # optax would apply NaN updates after this many skips; the
# loops stop long before (solver.max_nonfinite_steps, eva_jax/solver/nonfinite.py)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  name: str = "adamw"  # one of OPTIMIZERS
  learning_rate: float = 5e-7  # peak learning rate
  schedule: str = "cosine"  # one of SCHEDULES (after warmup)
  warmup_frac: float = 0.1  # fraction of the total steps spent warming up linearly from 0
  weight_decay: float = 0.0  # decoupled weight decay (AdamW only)
  b1: float = 0.9  # Adam first-moment decay
  b2: float = 0.999  # Adam second-moment decay / RMSprop decay
  eps: float = 1e-8  # Adam / RMSprop epsilon
  max_grad_norm: float = 1.0  # clip by global norm; 0 = no clipping


def learning_rate(cfg: OptimizerConfig, step, total_steps) -> jax.Array:
  """The learning rate at `step` (0-based) of a run of `total_steps` optimizer steps.

  Both may be traced. Warmup is linear from 0 over round(warmup_frac * total_steps) steps, then the
  schedule runs over the remaining steps (the values `optax`'s join of linear warmup and cosine or
  linear decay gives).
  """
  step = jnp.asarray(step, jnp.float32)
  total = jnp.maximum(jnp.asarray(total_steps, jnp.float32), 1.0)
  warmup = jnp.round(cfg.warmup_frac * total)
  decay = jnp.maximum(total - warmup, 1.0)
  done = jnp.clip(step - warmup, 0.0, decay) / decay
  if cfg.schedule == "cosine":
    after = 0.5 * (1.0 + jnp.cos(jnp.pi * done))
  elif cfg.schedule == "linear":
    after = 1.0 - done
  elif cfg.schedule == "constant":
    after = jnp.ones_like(done)
  else:
    raise ValueError(f"unknown schedule {cfg.schedule!r}; expected one of {SCHEDULES}")
  warm = step / jnp.maximum(warmup, 1.0)
  return cfg.learning_rate * jnp.where(step < warmup, warm, after)


def schedule(cfg: OptimizerConfig, total_steps: int) -> optax.Schedule:
  """`learning_rate` as an optax schedule (a function of the step) for a run of `total_steps` steps."""
  if total_steps < 1:
    raise ValueError(f"total_steps must be >= 1, got {total_steps}")
  return lambda step: learning_rate(cfg, step, total_steps)


def make_optimizer(cfg: OptimizerConfig) -> optax.GradientTransformation:
  """The update direction at a unit learning rate; scale its updates by `learning_rate(...)`."""
  if cfg.name == "adamw":
    opt = optax.adamw(1.0, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
  elif cfg.name == "rmsprop":
    opt = optax.rmsprop(1.0, decay=cfg.b2, eps=cfg.eps)
  elif cfg.name == "sgd":
    opt = optax.sgd(1.0)
  else:
    raise ValueError(f"unknown optimizer {cfg.name!r}; expected one of {OPTIMIZERS}")
  if cfg.max_grad_norm > 0:
    opt = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), opt)
  # A step with non-finite gradients leaves params and moments untouched (it is counted in the
  # state); the loops stop after solver.max_nonfinite_steps such steps in a row (nonfinite.py).
  return optax.apply_if_finite(opt, max_consecutive_errors=MAX_CONSECUTIVE_NONFINITE)
