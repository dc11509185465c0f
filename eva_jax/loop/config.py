"""The `config.loop` section: offline rounds or online steps, sampling, pairs, warm start, checkpoints."""

import dataclasses
import math

import ml_collections

from eva_jax import config_fields as fields

MODES = ("offline", "online")
DRAWS = ("weighted", "uniform", "dapo")
PROMPTS = ("evolve", "static", "subset", "fresh")


@dataclasses.dataclass(frozen=True)
class LoopConfig:
  mode: str  # one of MODES
  rounds: int  # eva rounds after the warm start
  prompts: str  # one of PROMPTS: evolve (eva), static, subset or fresh (baselines; see offline.py)
  num_samples: int  # responses sampled per prompt (n)
  temperature: float  # sampling temperature of the solver's responses
  top_p: float  # nucleus sampling
  max_new_tokens: int  # response length limit when sampling
  sample_batch_size: int  # prompts per sampler call
  max_cache_length: int  # KV-cache length (prompt + response tokens)
  old_fraction: float  # share of training pairs drawn from the round's old prompts
  min_gap: float  # a pair needs best - worst reward > min_gap
  min_chosen_reward: float  # a pair needs its chosen (best) response to score at least this
  rehearse: bool  # old prompts without a pair add (best, best) rows: NLL only (pairs.rehearsal)
  max_train_pairs: (
    int  # pairs a round trains on at most, drawn at random (0 = all); equalises ablation budgets
  )
  warmstart_steps: int  # SFT steps on seed-difficulty reference answers before round 1 (0 = none)
  warmstart_batch_size: int  # SFT batch size
  warmstart_learning_rate: float  # SFT peak learning rate (cosine, 5% warmup)
  steps: int  # online: RLOO steps
  draw: str  # online: how a step's prompts are drawn from the pool (one of DRAWS)
  creator_every_steps: int  # online: the creator evolves the pool every this many steps
  checkpoint_every_steps: int  # online: checkpoint interval (steps)
  checkpoint_keep: int  # run checkpoints kept


def _min_chosen(config) -> float:
  value = fields.get(config, "loop.min_chosen_reward", (int, float))
  if isinstance(value, bool) or math.isnan(value) or value == math.inf:
    raise fields.ConfigError(f"config.loop.min_chosen_reward: expected a number or -inf (off), got {value!r}")
  return float(value)


def parse(config: ml_collections.ConfigDict) -> LoopConfig:
  """Validates `config.loop`; a bad field raises ConfigError naming it."""
  fields.get(config, "loop", ml_collections.ConfigDict)
  number, integer = fields.number, fields.integer
  return LoopConfig(
    mode=fields.choice(config, "loop.mode", MODES),
    rounds=integer(config, "loop.rounds", low=0),
    prompts=fields.choice(config, "loop.prompts", PROMPTS),
    num_samples=integer(config, "loop.num_samples", low=2),
    temperature=number(config, "loop.temperature", low=0.0),
    top_p=fields.top_p(config, "loop.top_p"),
    max_new_tokens=integer(config, "loop.max_new_tokens", low=1),
    sample_batch_size=integer(config, "loop.sample_batch_size", low=1),
    max_cache_length=integer(config, "loop.max_cache_length", low=2),
    old_fraction=number(config, "loop.old_fraction", low=0.0, high=0.99),
    min_gap=number(config, "loop.min_gap", low=0.0),
    min_chosen_reward=_min_chosen(config),
    rehearse=fields.flag(config, "loop.rehearse"),
    max_train_pairs=integer(config, "loop.max_train_pairs", low=0),
    warmstart_steps=integer(config, "loop.warmstart_steps", low=0),
    warmstart_batch_size=integer(config, "loop.warmstart_batch_size", low=1),
    warmstart_learning_rate=number(config, "loop.warmstart_learning_rate", low=0.0),
    steps=integer(config, "loop.steps", low=0),
    draw=fields.choice(config, "loop.draw", DRAWS),
    creator_every_steps=integer(config, "loop.creator_every_steps", low=1),
    checkpoint_every_steps=integer(config, "loop.checkpoint_every_steps", low=1),
    checkpoint_keep=integer(config, "loop.checkpoint_keep", low=1),
  )
