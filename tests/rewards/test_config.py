"""`config.reward` / `config.reward_model` parsing: quickstart values, and errors that name the field."""

import pytest

from configs import quickstart
from configs import reward_model as reward_model_config
from eva_jax import config as config_lib
from eva_jax.rewards import config as reward_config


def _with(config_fn=quickstart.get_config, **overrides):
  config = config_fn()
  config.unlock()
  for field, value in overrides.items():
    node = config
    *parents, leaf = field.split("__")
    for parent in parents:
      node = node[parent]
    node._fields[leaf] = value  # bypass ConfigDict's type lock: configs can be written wrong too
  return config


def test_quickstart_reward_section_parses():
  cfg = reward_config.parse(quickstart.get_config())
  assert cfg == reward_config.RewardConfig(
    kind="task", task="addition_lsb_exact", batch_size=64, nonfinite="drop"
  )


def test_remote_and_model_settings_parse():
  cfg = reward_config.parse(
    _with(
      reward__kind="remote",
      reward__url="https://rm.example:8443/score",
      reward__api_key_env="EVA_RM_KEY",
      reward__max_concurrency=8,
      reward__timeout_s=5,
      reward__nonfinite="fail",
    )
  )
  assert (cfg.kind, cfg.url, cfg.api_key_env, cfg.max_concurrency, cfg.timeout_s, cfg.nonfinite) == (
    "remote",
    "https://rm.example:8443/score",
    "EVA_RM_KEY",
    8,
    5.0,
    "fail",
  )
  assert reward_config.parse(_with(reward__kind="model", reward__checkpoint="/rm")).checkpoint == "/rm"


@pytest.mark.parametrize(
  "overrides,message",
  [
    ({"reward__kind": "armo"}, r"config.reward.kind: 'armo' is not one of \['model', 'remote', 'task'\]"),
    ({"reward__task": "chess"}, "config.reward.task: unknown task 'chess'"),
    ({"reward__batch_size": 0}, "config.reward.batch_size: 0 must be in"),
    ({"reward__nonfinite": "zero"}, "config.reward.nonfinite: 'zero' is not one of"),
    ({"reward__kind": "model"}, "config.reward.checkpoint: kind 'model' needs"),
    ({"reward__kind": "remote"}, "config.reward.url: '' is not an http"),
    ({"reward__kind": "remote", "reward__url": "ftp://x/score"}, "config.reward.url: 'ftp://x/score' is not"),
    ({"reward__max_concurrency": 0}, "config.reward.max_concurrency: 0 must be in"),
    ({"reward__timeout_s": 0}, "config.reward.timeout_s: 0 must be in"),
    ({"reward__timeout_s": float("nan")}, "config.reward.timeout_s: expected a finite number"),
    ({"reward__max_retries": -1}, "config.reward.max_retries: -1 must be in"),
    ({"reward__backoff_s": "1"}, "config.reward.backoff_s: expected int or float"),
  ],
)
def test_reward_errors_name_the_field(overrides, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    reward_config.parse(_with(**overrides))


def test_credentials_in_the_config_are_refused_without_being_echoed():
  secret = "sk-live-4f9a77c1e0"
  with pytest.raises(config_lib.ConfigError, match="config.reward.api_key_env: must be the NAME") as err:
    reward_config.parse(_with(reward__api_key_env=secret))
  assert secret not in str(err.value)
  url = f"https://user:{secret}@rm.example/score"
  with pytest.raises(config_lib.ConfigError, match="config.reward.url: must not embed credentials") as err:
    reward_config.parse(_with(reward__kind="remote", reward__url=url))
  assert secret not in str(err.value)


def test_reward_model_training_config_parses():
  cfg = reward_config.parse_training(reward_model_config.get_config())
  assert cfg.task == "addition" and cfg.corruptions == ("truncate", "repeat", "garble")
  assert cfg.steps == 100 and cfg.batch_size == 32 and cfg.warmup_steps == 10
  # The training config is a full run config too: the top-level parse accepts it.
  assert config_lib.parse(reward_model_config.get_config(), num_devices=8).model.name == "tiny"


@pytest.mark.parametrize(
  "overrides,message",
  [
    ({"reward_model__corruptions": ("typo",)}, "config.reward_model.corruptions: 'typo' is not one of"),
    ({"reward_model__corruptions": ()}, "config.reward_model.corruptions: at least one"),
    ({"reward_model__task": "chess"}, "config.reward_model.task: unknown task 'chess'"),
    ({"reward_model__steps": 0}, "config.reward_model.steps: 0 must be >= 1"),
    ({"reward_model__warmup_steps": 101}, r"config.reward_model.warmup_steps: 101 must be in \[0, 100\]"),
    ({"reward_model__learning_rate": -1e-3}, "config.reward_model.learning_rate: -0.001 must be in"),
    ({"reward_model__eval_pairs": 0}, "config.reward_model.eval_pairs: 0 must be >= 1"),
  ],
)
def test_training_errors_name_the_field(overrides, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    reward_config.parse_training(_with(reward_model_config.get_config, **overrides))
