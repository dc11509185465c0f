"""Optimizers and learning-rate schedules from the solver config (optax).

AdamW is the default (the paper's DPO runs); RMSprop is what the eva authors used for SPPO. The
schedule warms up linearly over `warmup_frac` of the steps, then decays (cosine or linear) or stays
constant; gradients are clipped by global norm first, and a step with non-finite gradients is
skipped (optax.apply_if_finite).
"""

import dataclasses

import optax

OPTIMIZERS = ("adamw", "rmsprop", "sgd")
SCHEDULES = ("cosine", "linear", "constant")
MAX_CONSECUTIVE_NONFINITE = 1_000_000  # optax would apply NaN updates after this many skips


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


def schedule(cfg: OptimizerConfig, total_steps: int) -> optax.Schedule:
  """Learning rate per step for a run of `total_steps` optimizer steps."""
  if total_steps < 1:
    raise ValueError(f"total_steps must be >= 1, got {total_steps}")
  warmup = int(round(cfg.warmup_frac * total_steps))
  decay = max(total_steps - warmup, 1)
  if cfg.schedule == "cosine":
    after = optax.cosine_decay_schedule(cfg.learning_rate, decay)
  elif cfg.schedule == "linear":
    after = optax.linear_schedule(cfg.learning_rate, 0.0, decay)
  elif cfg.schedule == "constant":
    after = optax.constant_schedule(cfg.learning_rate)
  else:
    raise ValueError(f"unknown schedule {cfg.schedule!r}; expected one of {SCHEDULES}")
  if warmup == 0:
    return after
  return optax.join_schedules([optax.linear_schedule(0.0, cfg.learning_rate, warmup), after], [warmup])


def make_optimizer(cfg: OptimizerConfig, total_steps: int) -> optax.GradientTransformation:
  lr = schedule(cfg, total_steps)
  if cfg.name == "adamw":
    opt = optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
  elif cfg.name == "rmsprop":
    opt = optax.rmsprop(lr, decay=cfg.b2, eps=cfg.eps)
  elif cfg.name == "sgd":
    opt = optax.sgd(lr)
  else:
    raise ValueError(f"unknown optimizer {cfg.name!r}; expected one of {OPTIMIZERS}")
  if cfg.max_grad_norm > 0:
    opt = optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), opt)
  # A step with non-finite gradients leaves params and moments untouched (it is counted in the
  # state); the loop decides when too many such steps mean the run is broken.
  return optax.apply_if_finite(opt, max_consecutive_errors=MAX_CONSECUTIVE_NONFINITE)
