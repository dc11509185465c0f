"""The creator's and the prompt pool's config sections, validated into frozen dataclasses.

`parse(config)` reads `config.creator`, `parse_pool(config)` reads `config.pool`; every field is
checked and a bad one raises `ConfigError` naming it (`config.creator.sample_frac: 1.5 must be in
[0.0, 1.0]`). The dataclass defaults are the paper's settings, so tests and benchmarks can build
configs directly; `configs/quickstart.py` documents every field.
"""

import dataclasses

import ml_collections

from eva_jax import config_fields as config_lib
from eva_jax import tasks
from eva_jax.creator import informativeness
from eva_jax.creator import selection
from eva_jax.creator.evolvers import meta_prompts
from eva_jax.rewards import credentials

EVOLVERS = ("task", "llm")
BACKENDS = ("gemma", "openai")
SEED_SOURCES = ("task", "jsonl", "csv", "parquet", "hf_disk", "tfds")
MALFORMED_POLICIES = ("skip", "fail")


@dataclasses.dataclass(frozen=True)
class FilterConfig:
  dedup_exact: bool = True  # drop texts already in the pool (or earlier in the batch)
  dedup_normalised: bool = True  # ... also after NFKC, case folding and whitespace collapsing
  drop_empty: bool = True  # empty or whitespace-only
  drop_bad_chars: bool = True  # not encodable as UTF-8, control characters, U+FFFD
  min_tokens: int = 0  # fewer tokens than this are dropped; 0 = no bound
  max_tokens: int = 0  # more tokens than this are dropped; 0 = no bound
  user_filter: str = ""  # "package.module:function" keeping a prompt when function(text) is true

  @property
  def needs_tokens(self) -> bool:
    return self.min_tokens > 0 or self.max_tokens > 0


@dataclasses.dataclass(frozen=True)
class LLMConfig:
  backend: str = "openai"  # "gemma" (our sampler on a Gemma model) or "openai" (HTTP endpoint)
  temperature: float = 0.88  # paper (gemini-1.5-pro as evolver)
  top_p: float = 1.0
  max_new_tokens: int = 666  # paper
  drop_truncated: bool = True  # a rewrite cut at max_new_tokens is half a prompt
  base_url: str = ""  # e.g. https://generativelanguage.googleapis.com/v1beta/openai/ or http://host:8000/v1
  model: str = ""  # model name the endpoint serves
  api_key_env: str = "OPENAI_API_KEY"  # NAME of the env var holding the key; "" = no key (local servers)
  max_concurrency: int = 8  # requests in flight
  requests_per_second: float = 4.0  # request starts per second; 0 = unlimited
  max_retries: int = 4  # per request, on 429, 5xx, timeouts and connection errors
  timeout_s: float = 120.0  # per attempt
  batch_size: int = 32  # gemma backend: prompts per device call
  max_cache_length: int = 2048  # gemma backend: meta-prompt + rewrite tokens a row may hold


@dataclasses.dataclass(frozen=True)
class CreatorConfig:
  info_metric: str = "gap"
  selection: str = "importance_weighted"
  sample_frac: float = 0.25
  num_evolutions: int = 4  # chain length per selected prompt; all children kept
  evolver: str = "llm"
  task: str = "addition"  # the task evolver's operators
  methods: tuple[tuple[str, float], ...] = ()  # (method, weight); () = uniform over the evolver's methods
  filters: FilterConfig = FilterConfig()
  llm: LLMConfig = LLMConfig()


@dataclasses.dataclass(frozen=True)
class PoolConfig:
  dir: str = ""  # "" = <workdir>/pool; local path or gs://
  seed_source: str = "task"  # task, jsonl, csv, parquet, hf_disk or tfds
  seed_path: str = ""  # file (jsonl, csv, parquet), Parquet or save_to_disk directory, TFDS directory
  seed_field: str = "prompt"  # JSON key, CSV/Parquet/Arrow column or TFDS feature holding the prompt
  seed_split: str = "train"  # TFDS split, or the DatasetDict split of an hf_disk directory
  num_seeds: int = 256  # task: how many to draw; files: first N kept (0 = all)
  on_malformed: str = "skip"  # skip (count and log line numbers) or fail
  max_size: int = 0  # prompts kept per generation (least informative dropped first); 0 = all


def evolver_methods(evolver: str, task: str) -> tuple[str, ...]:
  if evolver == "task":
    found = tasks.get_task(task)
    return found.in_depth_methods + found.in_breadth_methods
  return meta_prompts.METHODS


def _methods(config, evolver: str, task: str) -> tuple[tuple[str, float], ...]:
  allowed = evolver_methods(evolver, task)
  pairs = []
  for name in sorted(dict(config_lib.get(config, "creator.methods", (dict, ml_collections.ConfigDict)))):
    if name not in allowed:
      raise config_lib.ConfigError(
        f"config.creator.methods: {name!r} is not a method of the {evolver} evolver; "
        f"expected some of {list(allowed)}"
      )
    pairs.append((name, config_lib.number(config, f"creator.methods.{name}", low=0.0)))
  if pairs and sum(w for _, w in pairs) <= 0:
    raise config_lib.ConfigError("config.creator.methods: the weights sum to 0")
  return tuple(pairs)


def _filters(config) -> FilterConfig:
  f = "creator.filters."
  out = FilterConfig(
    dedup_exact=config_lib.flag(config, f + "dedup_exact"),
    dedup_normalised=config_lib.flag(config, f + "dedup_normalised"),
    drop_empty=config_lib.flag(config, f + "drop_empty"),
    drop_bad_chars=config_lib.flag(config, f + "drop_bad_chars"),
    min_tokens=config_lib.integer(config, f + "min_tokens", low=0),
    max_tokens=config_lib.integer(config, f + "max_tokens", low=0),
    user_filter=config_lib.get(config, f + "user_filter", str),
  )
  if out.max_tokens and out.min_tokens > out.max_tokens:
    raise config_lib.ConfigError(
      f"config.creator.filters.min_tokens: {out.min_tokens} exceeds max_tokens {out.max_tokens}"
    )
  if out.user_filter and ":" not in out.user_filter:
    raise config_lib.ConfigError(
      f"config.creator.filters.user_filter: {out.user_filter!r} must read 'package.module:function'"
    )
  return out


def _api_key_env(config, field: str) -> str:
  name = config_lib.get(config, field, str)
  if name and not credentials.is_env_name(name):
    # Not echoed: a value that is not a variable name may be the key itself.
    raise config_lib.ConfigError(
      f"config.{field}: must be the NAME of an environment variable (letters, digits, _), not the key itself"
    )
  return name


def _llm(config, required: bool) -> LLMConfig:
  f = "creator.llm."
  out = LLMConfig(
    backend=config_lib.choice(config, f + "backend", BACKENDS),
    temperature=config_lib.number(config, f + "temperature", low=0.0),
    top_p=config_lib.top_p(config, f + "top_p"),
    max_new_tokens=config_lib.integer(config, f + "max_new_tokens", low=1),
    drop_truncated=config_lib.flag(config, f + "drop_truncated"),
    base_url=config_lib.get(config, f + "base_url", str),
    model=config_lib.get(config, f + "model", str),
    api_key_env=_api_key_env(config, f + "api_key_env"),
    max_concurrency=config_lib.integer(config, f + "max_concurrency", low=1, high=1024),
    requests_per_second=config_lib.number(config, f + "requests_per_second", low=0.0),
    max_retries=config_lib.integer(config, f + "max_retries", low=0, high=100),
    timeout_s=config_lib.number(config, f + "timeout_s", low=1e-3),
    batch_size=config_lib.integer(config, f + "batch_size", low=1),
    max_cache_length=config_lib.integer(config, f + "max_cache_length", low=2),
  )
  if required and out.backend == "openai":
    for field in ("base_url", "model"):
      if not getattr(out, field):
        raise config_lib.ConfigError(f"config.creator.llm.{field}: the openai backend needs it")
  if required and out.backend == "gemma" and out.max_new_tokens >= out.max_cache_length:
    raise config_lib.ConfigError(
      f"config.creator.llm.max_new_tokens: {out.max_new_tokens} leaves no room for the meta-prompt "
      f"in max_cache_length {out.max_cache_length}"
    )
  return out


def parse(config) -> CreatorConfig:
  """Validates `config.creator` (see the module docstring)."""
  evolver = config_lib.choice(config, "creator.evolver", EVOLVERS)
  task = config_lib.task_of(config, "creator")
  if (task or evolver == "task") and task not in tasks.TASKS:  # "" (no task) is fine for an LLM evolver
    raise config_lib.ConfigError(f"config.creator.task: {task!r} is not one of {sorted(tasks.TASKS)}")
  return CreatorConfig(
    info_metric=config_lib.choice(config, "creator.info_metric", informativeness.METRICS),
    selection=config_lib.choice(config, "creator.selection", selection.STRATEGIES),
    sample_frac=config_lib.number(config, "creator.sample_frac", low=0.0, high=1.0),
    num_evolutions=config_lib.integer(config, "creator.num_evolutions", low=1, high=64),
    evolver=evolver,
    task=task,
    methods=_methods(config, evolver, task),
    filters=_filters(config),
    llm=_llm(config, required=evolver == "llm"),
  )


def parse_pool(config) -> PoolConfig:
  """Validates `config.pool`."""
  out = PoolConfig(
    dir=config_lib.get(config, "pool.dir", str),
    seed_source=config_lib.choice(config, "pool.seed_source", SEED_SOURCES),
    seed_path=config_lib.get(config, "pool.seed_path", str),
    seed_field=config_lib.get(config, "pool.seed_field", str),
    seed_split=config_lib.get(config, "pool.seed_split", str),
    num_seeds=config_lib.integer(config, "pool.num_seeds", low=0),
    on_malformed=config_lib.choice(config, "pool.on_malformed", MALFORMED_POLICIES),
    max_size=config_lib.integer(config, "pool.max_size", low=0),
  )
  if out.seed_source != "task" and not out.seed_path:
    raise config_lib.ConfigError(f"config.pool.seed_path: seed_source {out.seed_source!r} needs a path")
  if out.seed_source != "task" and not out.seed_field:
    raise config_lib.ConfigError("config.pool.seed_field: must name the prompt field")
  if out.seed_source == "task" and out.num_seeds < 1:
    raise config_lib.ConfigError("config.pool.num_seeds: seed_source 'task' needs num_seeds >= 1")
  return out
