"""Typed, validated `config.reward` (which reward source) and `config.reward_model` (how to train one).

`parse(config)` and `parse_training(config)` check every field with the public validators of
`eva_jax.config` and return frozen dataclasses; errors name the field (`config.reward.url: ...`).
Credentials are never part of a config: `api_key_env` holds the *name* of an environment variable,
and a value that does not look like a variable name is refused without being echoed.
"""

import dataclasses
import urllib.parse

from eva_jax import config_fields as config_lib
from eva_jax.rewards import credentials
from eva_jax.rewards import nonfinite as nonfinite_lib
from eva_jax.rewards import preferences
from eva_jax.rewards import protocols
from eva_jax.tasks import get_task

KINDS = ("task", "model", "remote")


@dataclasses.dataclass(frozen=True)
class RewardConfig:
  """Where rewards come from. Only the fields of the chosen `kind` matter."""

  kind: str  # "task", "model" or "remote"
  task: str = "addition"  # task registry name (kind=task)
  batch_size: int = 64  # pairs per device call (model) or per HTTP request (remote); progress bar above it
  nonfinite: str = "drop"  # NaN/inf policy: "drop" the response (reported) or "fail" the round
  checkpoint: str = ""  # reward-model directory written by train_reward_model (kind=model)
  tokenizer: str = ""  # reward model's sentencepiece .model; "" = the embedded tokenizer (kind=model)
  url: str = ""  # endpoint speaking `protocol` (kind=remote)
  protocol: str = "eva"  # wire format of the server: eva, vllm or openrlhf (`protocols.py`)
  model: str = ""  # vllm: the served model's name; "" = the server's default
  query_template: str = "gemma"  # openrlhf: preset name or "...{prompt}...{response}..." template
  api_key_env: str = ""  # NAME of the environment variable holding a bearer token; "" = no auth
  max_concurrency: int = 4  # requests in flight at once (kind=remote)
  timeout_s: float = 60.0  # per-request timeout (kind=remote)
  max_retries: int = 5  # retries of a failed request (connect error, timeout, 5xx, 429)
  backoff_s: float = 0.5  # first retry delay; doubles on every further retry


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """Bradley-Terry training of a reward model on synthetic preference pairs made from a task."""

  task: str  # task whose graded reward decides which response of a pair is preferred
  corruptions: tuple[str, ...]  # how rejected responses are made from the reference (preferences.py)
  train_pairs: int  # preference pairs to train on
  eval_pairs: int  # held-out pairs (prompts never trained on) for pairwise accuracy
  steps: int  # optimizer steps
  batch_size: int  # pairs per step (a multiple of the mesh's data x fsdp size)
  learning_rate: float  # AdamW peak learning rate (linear warm-up, cosine decay)
  warmup_steps: int  # linear warm-up steps
  weight_decay: float  # AdamW decoupled weight decay
  max_grad_norm: float  # global gradient-norm clip; 0 = off


def _url(config) -> str:
  url = config_lib.get(config, "reward.url", str)
  parts = urllib.parse.urlsplit(url)
  if parts.username or parts.password:
    # Not echoed: the URL carries a credential.
    raise config_lib.ConfigError(
      "config.reward.url: must not embed credentials; use config.reward.api_key_env"
    )
  if parts.scheme not in ("http", "https") or not parts.netloc:
    raise config_lib.ConfigError(f"config.reward.url: {url!r} is not an http:// or https:// URL")
  return url


def _api_key_env(config) -> str:
  name = config_lib.get(config, "reward.api_key_env", str)
  if name and not credentials.is_env_name(name):
    # Not echoed: a value that is not a variable name may be the key itself.
    raise config_lib.ConfigError(
      "config.reward.api_key_env: must be the NAME of an environment variable (letters, digits, _), "
      "not the key itself"
    )
  return name


def parse(config) -> RewardConfig:
  """Validates `config.reward`; fields of kinds other than the chosen one are checked for type only."""
  kind = config_lib.choice(config, "reward.kind", KINDS)
  task = config_lib.task_of(config, "reward")
  if kind == "task":
    config_lib.wrap("reward.task", lambda: get_task(task))
  checkpoint = config_lib.get(config, "reward.checkpoint", str)
  if kind == "model" and not checkpoint:
    raise config_lib.ConfigError("config.reward.checkpoint: kind 'model' needs a reward-model directory")
  url = _url(config) if kind == "remote" else config_lib.get(config, "reward.url", str)
  protocol = config_lib.choice(config, "reward.protocol", protocols.PROTOCOLS)
  if kind == "remote" and (problem := protocols.check_url(protocol, url)):
    raise config_lib.ConfigError(f"config.reward.url: {problem}")
  template = config_lib.get(config, "reward.query_template", str)
  config_lib.wrap("reward.query_template", lambda: protocols.query_template(template))
  return RewardConfig(
    kind=kind,
    task=task,
    batch_size=config_lib.integer(config, "reward.batch_size", low=1, high=1 << 16),
    nonfinite=config_lib.choice(config, "reward.nonfinite", nonfinite_lib.POLICIES),
    checkpoint=checkpoint,
    tokenizer=config_lib.get(config, "reward.tokenizer", str),
    url=url,
    protocol=protocol,
    model=config_lib.get(config, "reward.model", str),
    query_template=template,
    api_key_env=_api_key_env(config),
    max_concurrency=config_lib.integer(config, "reward.max_concurrency", low=1, high=256),
    timeout_s=config_lib.number(config, "reward.timeout_s", low=0.001),
    max_retries=config_lib.integer(config, "reward.max_retries", low=0, high=100),
    backoff_s=config_lib.number(config, "reward.backoff_s", low=0.0, high=600.0),
  )


def _corruptions(config) -> tuple[str, ...]:
  names = tuple(config_lib.get(config, "reward_model.corruptions", (tuple, list)))
  if not names:
    raise config_lib.ConfigError("config.reward_model.corruptions: at least one is needed")
  for name in names:
    if name not in preferences.CORRUPTIONS:
      raise config_lib.ConfigError(
        f"config.reward_model.corruptions: {name!r} is not one of {sorted(preferences.CORRUPTIONS)}"
      )
  return names


def parse_training(config) -> TrainingConfig:
  """Validates `config.reward_model` (the `--mode=train_reward_model` job)."""
  task = config_lib.get(config, "reward_model.task", str)
  config_lib.wrap("reward_model.task", lambda: get_task(task))
  steps = config_lib.integer(config, "reward_model.steps", low=1)
  return TrainingConfig(
    task=task,
    corruptions=_corruptions(config),
    train_pairs=config_lib.integer(config, "reward_model.train_pairs", low=1),
    eval_pairs=config_lib.integer(config, "reward_model.eval_pairs", low=1),
    steps=steps,
    batch_size=config_lib.integer(config, "reward_model.batch_size", low=1),
    learning_rate=config_lib.number(config, "reward_model.learning_rate", low=0.0, high=1.0),
    warmup_steps=config_lib.integer(config, "reward_model.warmup_steps", low=0, high=steps),
    weight_decay=config_lib.number(config, "reward_model.weight_decay", low=0.0),
    max_grad_norm=config_lib.number(config, "reward_model.max_grad_norm", low=0.0),
  )
