"""`config.eval` parsing: the quickstart's section, and errors that name the field."""

import pytest

from configs import quickstart
from eva_jax.config_fields import ConfigError
from eva_jax.evaluation import config as eval_config


def _quickstart():
  return quickstart.get_config()


def test_quickstart_section():
  cfg = eval_config.parse(_quickstart())
  assert (cfg.task, cfg.reference, cfg.every_rounds) == ("addition_lsb", "round0", 1)
  assert (cfg.bootstrap, cfg.confidence, cfg.tie_tolerance) == (1000, 0.95, 0.0)
  sampling = cfg.sampling()
  assert (sampling.num_samples, sampling.temperature, sampling.top_p) == (1, 0.0, 1.0)
  assert (sampling.max_new_tokens, sampling.max_cache_length) == (cfg.max_new_tokens, cfg.max_cache_length)
  assert not cfg.export.enabled and cfg.export.model_id == "eva_jax"
  assert cfg.export.sampling().num_samples == 1


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("temperature", -0.5, "config.eval.temperature: -0.5 must be in"),
    ("top_p", 0.0, "config.eval.top_p: must be in (0, 1]"),
    ("bootstrap", -1, "config.eval.bootstrap: -1 must be"),
    ("confidence", 1.5, "config.eval.confidence: 1.5 must be in"),
    ("task", "chess", "config.eval.task: unknown task 'chess'"),
    ("per_bucket", "8", "config.eval.per_bucket: expected int"),
    ("max_new_tokens", 128, "config.eval.max_cache_length: 128 leaves no room"),
    ("every_rounds", -1, "config.eval.every_rounds: -1 must be >= 0"),
    ("export.model_id", "runs/eva", "config.eval.export.model_id: model id 'runs/eva'"),
    ("export.category_temperatures", 1, "config.eval.export.category_temperatures: expected bool"),
    ("export.max_new_tokens", 4096, "config.eval.export.max_cache_length: 1024 leaves no room"),
  ],
)
def test_bad_fields_are_named(field, value, message):
  config = _quickstart()
  section, _, leaf = ("eval." + field).rpartition(".")
  # Bypass ConfigDict's type lock: a config file can hold any value.
  (config.eval.export if section == "eval.export" else config.eval)._fields[leaf] = value
  with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace("]", "\\]")):
    eval_config.parse(config)


def test_prompts_are_needed_without_a_task():
  config = _quickstart()
  config.task = ""
  config.eval.task = ""
  with pytest.raises(
    ConfigError, match="config.eval.prompts_path: needed when config.eval.task and config.task"
  ):
    eval_config.parse(config)
  config.eval.prompts_path = "/data/heldout.jsonl"
  assert eval_config.parse(config).prompts_path == "/data/heldout.jsonl"


def test_rounds_due_for_evaluation():
  config = _quickstart()
  config.eval.every_rounds = 2
  cfg = eval_config.parse(config)
  assert [r for r in range(1, 6) if cfg.due(r, last_round=5)] == [2, 4, 5]
  config.eval.every_rounds = 0
  assert not any(eval_config.parse(config).due(r, last_round=5) for r in range(1, 6))
