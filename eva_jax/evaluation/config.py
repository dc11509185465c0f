"""The `config.eval` section: held-out evaluation after rounds (and `--mode=eval`) and benchmark exports.

`parse(config)` checks every field with `eva_jax.config_fields` and returns a frozen `EvalConfig`;
errors name the field (`config.eval.temperature: -1.0 must be in [0.0, None]`).
"""

import dataclasses

from eva_jax import config_fields as fields
from eva_jax.evaluation import validators
from eva_jax.sampling import sampler
from eva_jax.tasks import get_task

ROUND0 = "round0"  # `reference`: the params the run started from


_SAMPLING_FIELDS = ("max_new_tokens", "temperature", "top_p", "batch_size", "max_cache_length")


def _sampling(section, num_samples: int) -> sampler.SamplingConfig:
  """The sampler settings of a section that has the `_SAMPLING_FIELDS`."""
  return sampler.SamplingConfig(num_samples=num_samples, **{k: getattr(section, k) for k in _SAMPLING_FIELDS})


# What an export does with a question that does not fit the cache next to its answer: cut the
# question from the left (its end, where the ask usually is, is kept; counted and printed), leave
# it out of the answer file (listed in <model>.skipped.json), or stop the export.
LONG_PROMPT_POLICIES = ("truncate", "skip", "fail")


@dataclasses.dataclass(frozen=True)
class ExportConfig:
  """Benchmark answer generation; a benchmark runs when its question file is set."""

  dir: str  # output directory; "" = <workdir>/benchmarks
  model_id: str  # model name in the answer files (and their file names)
  arena_hard_questions: str  # Arena-Hard question.jsonl; "" = skip
  mt_bench_questions: str  # MT-Bench (FastChat) question.jsonl; "" = skip
  alpaca_eval_instructions: str  # AlpacaEval JSON list of instructions; "" = skip
  category_temperatures: bool  # MT-Bench/Arena-Hard: FastChat's per-category temperatures
  temperature: float  # 0 = greedy
  top_p: float
  max_new_tokens: int  # answer tokens per turn (Arena-Hard, AlpacaEval)
  mt_bench_max_new_tokens: int  # MT-Bench answer tokens per turn; 0 = max_new_tokens
  max_cache_length: int
  batch_size: int  # questions per sampler call
  long_prompts: str  # a question longer than the cache leaves room for: truncate | skip | fail

  @property
  def enabled(self) -> bool:
    return bool(self.arena_hard_questions or self.mt_bench_questions or self.alpaca_eval_instructions)

  def sampling(self, benchmark: str = "") -> sampler.SamplingConfig:
    config = _sampling(self, num_samples=1)
    if benchmark == "mt_bench" and self.mt_bench_max_new_tokens:
      config = dataclasses.replace(config, max_new_tokens=self.mt_bench_max_new_tokens)
    return config


@dataclasses.dataclass(frozen=True)
class EvalConfig:
  every_rounds: int  # evaluate after every k-th round and the last one; 0 = only in --mode=eval
  task: str  # task registry name for the held-out set and exact-match report; "" = none
  per_bucket: int  # the task's held-out prompts per difficulty bucket
  prompts_path: str  # JSONL/CSV of held-out prompts instead of the task's; "" = the task's
  prompts_field: str  # JSON key or CSV column of the prompt
  reference: str  # ROUND0, a params checkpoint directory, or "" (no win rate)
  num_samples: int  # responses per held-out prompt (paired with the reference's, sample by sample)
  temperature: float  # 0 = greedy
  top_p: float
  max_new_tokens: int
  max_cache_length: int
  batch_size: int  # prompts per sampler call
  bootstrap: int  # bootstrap resamples of the prompts; 0 = no interval
  confidence: float  # interval coverage, e.g. 0.95
  tie_tolerance: float  # |policy - reference reward| <= this is a tie (half a win)
  seed: int  # sampling and bootstrap seed
  export: ExportConfig

  def sampling(self) -> sampler.SamplingConfig:
    return _sampling(self, num_samples=self.num_samples)

  def due(self, round_index: int, last_round: int) -> bool:
    """Whether the loop evaluates after round `round_index` (1-based) of `last_round`."""
    if self.every_rounds == 0:
      return False
    return round_index % self.every_rounds == 0 or round_index == last_round


def _check_cache(section: str, sampling: sampler.SamplingConfig) -> None:
  if sampling.max_new_tokens >= sampling.max_cache_length:
    raise fields.ConfigError(
      f"config.{section}.max_cache_length: {sampling.max_cache_length} leaves no room for a prompt "
      f"next to max_new_tokens={sampling.max_new_tokens}"
    )


def _export(config) -> ExportConfig:
  export = ExportConfig(
    dir=fields.get(config, "eval.export.dir", str),
    model_id=fields.wrap(
      "eval.export.model_id",
      lambda: validators.check_model_id(fields.get(config, "eval.export.model_id", str)),
    ),
    arena_hard_questions=fields.get(config, "eval.export.arena_hard_questions", str),
    mt_bench_questions=fields.get(config, "eval.export.mt_bench_questions", str),
    alpaca_eval_instructions=fields.get(config, "eval.export.alpaca_eval_instructions", str),
    category_temperatures=fields.flag(config, "eval.export.category_temperatures"),
    temperature=fields.number(config, "eval.export.temperature", low=0.0),
    top_p=fields.top_p(config, "eval.export.top_p"),
    max_new_tokens=fields.integer(config, "eval.export.max_new_tokens", low=1),
    mt_bench_max_new_tokens=fields.integer(config, "eval.export.mt_bench_max_new_tokens", low=0),
    max_cache_length=fields.integer(config, "eval.export.max_cache_length", low=2),
    batch_size=fields.integer(config, "eval.export.batch_size", low=1),
    long_prompts=fields.choice(config, "eval.export.long_prompts", LONG_PROMPT_POLICIES),
  )
  _check_cache("eval.export", export.sampling())
  _check_cache("eval.export", export.sampling("mt_bench"))
  return export


def parse(config) -> EvalConfig:
  """Validates `config.eval`; a bad field raises ConfigError naming it."""
  task = fields.task_of(config, "eval")
  if task:
    fields.wrap("eval.task", lambda: get_task(task))
  prompts_path = fields.get(config, "eval.prompts_path", str)
  if not task and not prompts_path:
    raise fields.ConfigError(
      "config.eval.prompts_path: needed when config.eval.task and config.task are empty"
    )
  cfg = EvalConfig(
    every_rounds=fields.integer(config, "eval.every_rounds", low=0),
    task=task,
    per_bucket=fields.integer(config, "eval.per_bucket", low=1),
    prompts_path=prompts_path,
    prompts_field=fields.get(config, "eval.prompts_field", str),
    reference=fields.get(config, "eval.reference", str),
    num_samples=fields.integer(config, "eval.num_samples", low=1),
    temperature=fields.number(config, "eval.temperature", low=0.0),
    top_p=fields.top_p(config, "eval.top_p"),
    max_new_tokens=fields.integer(config, "eval.max_new_tokens", low=1),
    max_cache_length=fields.integer(config, "eval.max_cache_length", low=2),
    batch_size=fields.integer(config, "eval.batch_size", low=1),
    bootstrap=fields.integer(config, "eval.bootstrap", low=0, high=1_000_000),
    confidence=fields.number(config, "eval.confidence", low=0.5, high=0.999),
    tie_tolerance=fields.number(config, "eval.tie_tolerance", low=0.0),
    seed=fields.integer(config, "eval.seed", low=0),
    export=_export(config),
  )
  _check_cache("eval", cfg.sampling())
  return cfg
