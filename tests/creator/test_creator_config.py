"""config.creator and config.pool: the quickstart parses; every bad field is named."""

import functools

import ml_collections
import pytest

from configs import quickstart
from eva_jax import config_fields
from eva_jax.creator import config as creator_config


def test_quickstart_sections_parse():
  config = quickstart.get_config()
  creator = creator_config.parse(config)
  assert creator == creator_config.CreatorConfig(
    evolver="task",
    task="addition_lsb",
    methods=(
      ("add_digit", 0.25),
      ("add_operand", 0.0),
      ("remove_digit", 0.2),
      ("rephrase", 0.15),
      ("resample", 0.4),
    ),
    filters=creator_config.FilterConfig(min_tokens=1, max_tokens=64),
  )
  # The quickstart caps its pool.
  assert creator_config.parse_pool(config) == creator_config.PoolConfig(max_size=512)


def _with(**overrides):
  """The quickstart config with "a__b" fields set, bypassing ConfigDict's type lock (configs can be wrong)."""
  config = quickstart.get_config()
  for field, value in overrides.items():
    *parents, leaf = field.split("__")
    node = functools.reduce(lambda n, name: n[name], parents, config)
    node._fields[leaf] = ml_collections.ConfigDict(value) if isinstance(value, dict) else value
  return config


def test_llm_evolver_and_empty_methods():
  config = _with(
    creator__evolver="llm",
    creator__methods={},
    creator__llm__base_url="http://127.0.0.1:8000/v1",
    creator__llm__model="gemma-judge",
  )
  creator = creator_config.parse(config)
  assert creator.methods == () and creator.llm.model == "gemma-judge"
  config = _with(
    creator__evolver="llm", creator__methods={"persona": 2.0, "mix": 0.0}, creator__llm__backend="gemma"
  )
  assert creator_config.parse(config).methods == (("mix", 0.0), ("persona", 2.0))  # sorted by name


@pytest.mark.parametrize(
  "overrides,message",
  [
    ({"creator__info_metric": "loo"}, "config.creator.info_metric: 'loo' is not one of"),
    ({"creator__selection": "topk"}, "config.creator.selection: 'topk' is not one of"),
    ({"creator__sample_frac": 1.5}, r"config.creator.sample_frac: 1.5 must be in \[0.0, 1.0\]"),
    ({"creator__sample_frac": "0.25"}, "config.creator.sample_frac: expected int or float"),
    ({"creator__num_evolutions": 0}, "config.creator.num_evolutions: 0 must be in"),
    ({"creator__evolver": "gpt"}, "config.creator.evolver: 'gpt' is not one of"),
    ({"creator__task": "chess"}, "config.creator.task: 'chess' is not one of"),
    (
      {"creator__methods": {"deepen": 1.0}},
      "config.creator.methods: 'deepen' is not a method of the task evolver",
    ),
    (
      {"creator__methods": {"add_digit": -1.0}},
      r"config.creator.methods.add_digit: -1.0 must be in \[0.0, None\]",
    ),
    ({"creator__methods": {"add_digit": 0.0}}, "config.creator.methods: the weights sum to 0"),
    ({"creator__methods": [1, 2]}, "config.creator.methods: expected dict or ConfigDict"),
    ({"creator__filters__dedup_exact": 1}, "config.creator.filters.dedup_exact: expected bool"),
    ({"creator__filters__min_tokens": 80}, "config.creator.filters.min_tokens: 80 exceeds max_tokens 64"),
    ({"creator__filters__max_tokens": -1}, "config.creator.filters.max_tokens: -1 must be >= 0"),
    (
      {"creator__filters__user_filter": "mymodule"},
      "config.creator.filters.user_filter: 'mymodule' must read",
    ),
    ({"creator__llm__backend": "vllm"}, "config.creator.llm.backend: 'vllm' is not one of"),
    ({"creator__llm__top_p": 0.0}, "config.creator.llm.top_p: must be in"),
    ({"creator__llm__max_concurrency": 0}, "config.creator.llm.max_concurrency: 0 must be in"),
    ({"creator__llm__requests_per_second": -1.0}, "config.creator.llm.requests_per_second: -1.0 must be in"),
    (
      {"creator__evolver": "llm", "creator__methods": {}},
      "config.creator.llm.base_url: the openai backend needs it",
    ),
    (
      {"creator__evolver": "llm", "creator__methods": {}, "creator__llm__base_url": "http://x/v1"},
      "config.creator.llm.model: the openai backend needs it",
    ),
    (
      {
        "creator__evolver": "llm",
        "creator__methods": {},
        "creator__llm__backend": "gemma",
        "creator__llm__max_cache_length": 600,
      },
      "config.creator.llm.max_new_tokens: 666 leaves no room",
    ),
    ({"pool__seed_source": "arrow"}, "config.pool.seed_source: 'arrow' is not one of"),
    ({"pool__seed_source": "jsonl"}, "config.pool.seed_path: seed_source 'jsonl' needs a path"),
    (
      {"pool__seed_source": "csv", "pool__seed_path": "/x.csv", "pool__seed_field": ""},
      "config.pool.seed_field",
    ),
    ({"pool__num_seeds": 0}, "config.pool.num_seeds: seed_source 'task' needs num_seeds >= 1"),
    ({"pool__on_malformed": "ignore"}, "config.pool.on_malformed: 'ignore' is not one of"),
    ({"pool__max_size": -5}, "config.pool.max_size: -5 must be >= 0"),
    ({"pool__dir": None}, "config.pool.dir: expected str"),
  ],
)
def test_errors_name_the_field(overrides, message):
  config = _with(**overrides)
  with pytest.raises(config_fields.ConfigError, match=message):
    creator_config.parse(config)
    creator_config.parse_pool(config)


def test_a_key_given_where_the_variable_name_belongs_is_refused_without_echoing_it():
  secret = "sk-pasted-by-mistake-42"
  config = _with(creator__llm__api_key_env=secret)
  with pytest.raises(
    config_fields.ConfigError, match="config.creator.llm.api_key_env: must be the NAME"
  ) as err:
    creator_config.parse(config)
  assert secret not in str(err.value)
