"""Typed, validated run configuration: the `ml_collections.ConfigDict` stops here.

`parse(config_dict, num_devices)` checks every field at start-up and returns frozen dataclasses for
the library; a bad value raises `ConfigError` whose message names the field and what is allowed,
e.g. `config.model.name: 'gemma9' is not one of ['gemma2_2b', ...]`. Sections owned by a package are
parsed by that package (`eva_jax.solver.config.parse`, ...) with the validators of
`eva_jax.config_fields`.
"""

import dataclasses

from etils import epath
import ml_collections

from eva_jax.config_fields import ConfigError
from eva_jax.config_fields import choice
from eva_jax.config_fields import get
from eva_jax.config_fields import integer
from eva_jax.config_fields import task_of
from eva_jax.config_fields import wrap
from eva_jax.creator import config as creator_config
from eva_jax.evaluation import config as eval_config
from eva_jax.loop import config as loop_config
from eva_jax.models import architectures
from eva_jax.models import base_model
from eva_jax.models import hf_import
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.rewards import config as reward_config
from eva_jax.solver import config as solver_config

MODEL_INITS = ("random", "base")  # params without a checkpoint: random init or the shipped base


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  name: str  # key of architectures.ARCHITECTURES
  param_dtype: str  # "float32" or "bfloat16"
  checkpoint: str  # Gemma checkpoint directory (orbax or Hugging Face); "" = `init`
  init: str  # without a checkpoint: "random" or "base" (the embedded task's shipped base, tiny only)
  tokenizer: str  # sentencepiece .model path; "" = the checkpoint's own, else the embedded tokenizer
  logprob_chunk: int  # columns unembedded at once when computing log-probs

  @property
  def tokenizer_kind(self) -> str:
    return architectures.ARCHITECTURES[self.name].tokenizer_kind


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  shape: tuple[int, ...]  # resolved sizes of mesh_lib.AXES
  rules: tuple[tuple[str, str | None], ...]  # logical axis -> mesh axis


@dataclasses.dataclass(frozen=True)
class CheckConfig:
  num_problems: int  # task problems scored by the model check


@dataclasses.dataclass(frozen=True)
class RunConfig:
  seed: int
  model: ModelConfig
  mesh: MeshConfig
  check: CheckConfig
  solver: solver_config.SolverConfig
  reward: reward_config.RewardConfig
  creator: creator_config.CreatorConfig
  pool: creator_config.PoolConfig
  loop: loop_config.LoopConfig
  eval: eval_config.EvalConfig


# Sections that name a task; "" in one of them means `config.task`, anything else overrides it.
TASK_FIELDS = ("creator.task", "reward.task", "eval.task")


def resolve_task(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` whose `creator.task`, `reward.task` and `eval.task` are filled from `config.task`.

  The task is named once (`config.task`); a section that sets its own task overrides it. `config.task`
  = "" (the real-model configs) leaves the sections as they are ("" = no task).
  """
  out = ml_collections.ConfigDict(
    config.to_dict() if isinstance(config, ml_collections.ConfigDict) else config
  )
  for field in TASK_FIELDS:
    section = field.split(".")[0]
    if section in out and "task" in out[section]:
      out[section]["task"] = task_of(out, section)
  return out


# Losses under which a (best, best) rehearsal row still has a preference gradient (losses.sppo).
REHEARSAL_HAS_PREFERENCE_GRADIENT = frozenset({"sppo"})


def _tokenizer_beside(checkpoint: str) -> str:
  """A Hugging Face checkpoint directory's own tokenizer.model; "" when there is none."""
  if checkpoint and hf_import.is_hf_directory(checkpoint):
    path = epath.Path(checkpoint) / "tokenizer.model"
    return str(path) if path.exists() else ""
  return ""


def parse(config: ml_collections.ConfigDict, num_devices: int) -> RunConfig:
  """Validates `config` for a run on `num_devices` devices and returns the typed `RunConfig`."""
  name = choice(config, "model.name", list(architectures.ARCHITECTURES))
  checkpoint = get(config, "model.checkpoint", str)
  model = ModelConfig(
    name=name,
    param_dtype=choice(config, "model.param_dtype", list(architectures.DTYPES)),
    checkpoint=checkpoint,
    init=choice(config, "model.init", list(MODEL_INITS)),
    tokenizer=get(config, "model.tokenizer", str) or _tokenizer_beside(checkpoint),
    logprob_chunk=integer(config, "model.logprob_chunk", low=1),
  )
  if model.tokenizer_kind != "embedded" and not model.tokenizer:
    raise ConfigError(
      f"config.model.tokenizer: model {name!r} needs the path of its Gemma tokenizer .model "
      "(a Hugging Face model.checkpoint directory supplies its own tokenizer.model)"
    )
  if model.tokenizer_kind != "embedded" and not model.checkpoint:
    raise ConfigError(f"config.model.checkpoint: model {name!r} needs the path of its Gemma checkpoint")
  if model.init == "base" and not model.checkpoint and name != base_model.RECIPE.model:
    raise ConfigError(
      f"config.model.init: the shipped base is a {base_model.RECIPE.model!r} model, not {name!r} "
      "(use init='random' with a warm start, or set model.checkpoint)"
    )

  shape = get(config, "mesh.shape", (dict, ml_collections.ConfigDict))
  for axis in dict(shape):
    get(config, f"mesh.shape.{axis}", int)
  rules = tuple(tuple(rule) for rule in get(config, "mesh.rules", (tuple, list)))
  mesh = MeshConfig(
    shape=wrap("mesh.shape", lambda: mesh_lib.resolve_mesh_shape(dict(shape), num_devices)),
    rules=wrap("mesh.rules", lambda: partition.validate_rules(rules) or rules),
  )
  run = RunConfig(
    seed=integer(config, "seed", low=0),
    model=model,
    mesh=mesh,
    check=CheckConfig(num_problems=integer(config, "check.num_problems", low=1, high=4096)),
    solver=solver_config.parse(config),
    reward=reward_config.parse(config),
    creator=creator_config.parse(config),
    pool=creator_config.parse_pool(config),
    loop=loop_config.parse(config),
    eval=eval_config.parse(config),
  )
  if (run.loop.mode == "online") != run.solver.online:
    raise ConfigError(
      f"config.solver.loss: {run.solver.loss!r} does not fit config.loop.mode={run.loop.mode!r} "
      "(online runs RLOO: loss 'rloo'; offline runs the DPO family)"
    )
  if run.loop.rehearse and run.solver.loss in REHEARSAL_HAS_PREFERENCE_GRADIENT:
    # A (best, best) row is gradient-free only where the loss depends on the two log-ratios'
    # difference; SPPO pulls each towards its own target, so rehearsal rows would train on it.
    raise ConfigError(
      f"config.loop.rehearse: rehearsal rows (best, best) are not gradient-free under loss "
      f"{run.solver.loss!r}; set loop.rehearse=False"
    )
  if model.init == "base" and not model.checkpoint:
    # The base reads one prompt format; another task's prompts would look like a different language.
    for section in ("creator", "eval"):
      task = task_of(config, section)
      if task and task not in base_model.TASKS:
        raise ConfigError(
          f"config.{section}.task: the shipped base reads the prompts of {list(base_model.TASKS)}, "
          f"not {task!r} (use model.init='random' with a warm start for other tasks)"
        )
  return run


def flatten(config: ml_collections.ConfigDict) -> dict:
  """{"model.name": "tiny", ...}: the config (tasks resolved) as dotted paths to plain values."""
  config = resolve_task(config)
  out = {}

  def walk(node, prefix):
    for key, value in node.items():
      if isinstance(value, (dict, ml_collections.ConfigDict)):
        walk(value, f"{prefix}{key}.")
      else:
        out[f"{prefix}{key}"] = value

  walk(config.to_dict(), "")
  return out


def override(config: ml_collections.ConfigDict, values: dict) -> ml_collections.ConfigDict:
  """Sets dotted fields in place ({"loop.rounds": 1, ...}), as `--config.loop.rounds=1` would."""
  for key, value in values.items():
    node = config
    *parents, leaf = key.split(".")
    for part in parents:
      node = node[part]
    node[leaf] = value
  return config
