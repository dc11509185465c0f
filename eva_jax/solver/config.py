"""The `config.solver` section: loss, its hyper-parameters, batching and the optimizer."""

import dataclasses

import ml_collections

from eva_jax import config_fields as config_lib
from eva_jax.solver import losses
from eva_jax.solver import optim
from eva_jax.solver import rloo

LOSS_NAMES = (*losses.LOSSES, "rloo")


@dataclasses.dataclass(frozen=True)
class SolverConfig:
  loss: str  # one of LOSS_NAMES; "rloo" is the online solver
  preference: losses.PreferenceHParams
  rloo: rloo.RlooHParams
  nll_weight: float  # weight of the chosen-response NLL added to DPO-family losses
  updates_per_batch: int  # RLOO optimizer steps per sampled batch (> 1 needs clip_eps > 0)
  batch_size: int  # pairs (offline) or prompts x k rows (RLOO) per optimizer step
  micro_batches: int  # gradient-accumulation micro-batches per step
  epochs: int  # passes over each round's pair set (offline)
  max_prompt_len: int  # tokens, chat template included
  max_response_len: int  # tokens
  optimizer: optim.OptimizerConfig
  max_nonfinite_steps: int  # consecutive non-finite (skipped) optimizer steps that stop the run

  @property
  def online(self) -> bool:
    return self.loss == "rloo"


def parse(config: ml_collections.ConfigDict) -> SolverConfig:
  """Validates `config.solver`; a bad field raises ConfigError naming it."""
  number, integer, flag = config_lib.number, config_lib.integer, config_lib.flag
  config_lib.get(config, "solver", ml_collections.ConfigDict)
  loss = config_lib.choice(config, "solver.loss", LOSS_NAMES)
  preference = losses.PreferenceHParams(
    beta=number(config, "solver.beta", low=1e-9),
    label_smoothing=number(config, "solver.label_smoothing", low=0.0, high=0.5),
    simpo_gamma=number(config, "solver.simpo_gamma", low=0.0),
    orpo_lambda=number(config, "solver.orpo_lambda", low=0.0),
    ipo_per_token=flag(config, "solver.ipo_per_token"),
  )
  if loss == "cdpo" and preference.label_smoothing == 0:
    raise config_lib.ConfigError("config.solver.label_smoothing: loss 'cdpo' needs label_smoothing > 0")
  hp_rloo = rloo.RlooHParams(
    k=integer(config, "solver.rloo_k", low=2),
    beta=number(config, "solver.beta", low=1e-9),
    clip_eps=number(config, "solver.clip_eps", low=0.0, high=1.0),
  )
  updates = integer(config, "solver.updates_per_batch", low=1)
  if updates > 1 and hp_rloo.clip_eps == 0:
    raise config_lib.ConfigError(
      "config.solver.updates_per_batch: > 1 needs solver.clip_eps > 0 (importance clipping)"
    )
  batch_size = integer(config, "solver.batch_size", low=1)
  micro = integer(config, "solver.micro_batches", low=1)
  unit = hp_rloo.k if loss == "rloo" else 1
  if batch_size % (micro * unit):
    raise config_lib.ConfigError(
      f"config.solver.micro_batches: batch_size {batch_size} does not split into {micro} micro-batches"
      + (f" of whole groups of rloo_k={unit}" if unit > 1 else "")
    )
  opt = optim.OptimizerConfig(
    name=config_lib.choice(config, "solver.optimizer.name", optim.OPTIMIZERS),
    learning_rate=number(config, "solver.optimizer.learning_rate", low=0.0),
    schedule=config_lib.choice(config, "solver.optimizer.schedule", optim.SCHEDULES),
    warmup_frac=number(config, "solver.optimizer.warmup_frac", low=0.0, high=1.0),
    weight_decay=number(config, "solver.optimizer.weight_decay", low=0.0),
    b1=number(config, "solver.optimizer.b1", low=0.0, high=1.0),
    b2=number(config, "solver.optimizer.b2", low=0.0, high=1.0),
    eps=number(config, "solver.optimizer.eps", low=0.0),
    max_grad_norm=number(config, "solver.optimizer.max_grad_norm", low=0.0),
  )
  return SolverConfig(
    loss=loss,
    preference=preference,
    rloo=hp_rloo,
    nll_weight=number(config, "solver.nll_weight", low=0.0),
    updates_per_batch=updates,
    batch_size=batch_size,
    micro_batches=micro,
    epochs=integer(config, "solver.epochs", low=1),
    max_prompt_len=integer(config, "solver.max_prompt_len", low=1),
    max_response_len=integer(config, "solver.max_response_len", low=1),
    optimizer=opt,
    max_nonfinite_steps=integer(config, "solver.max_nonfinite_steps", low=1),
  )
