"""Typed, validated run configuration: the `ml_collections.ConfigDict` stops here.

`parse(config_dict, num_devices)` checks every field at start-up and returns frozen dataclasses for
the library; a bad value raises `ConfigError` whose message names the field and what is allowed,
e.g. `config.model.name: 'gemma9' is not one of ['gemma2_2b', ...]`. The field validators (`get`,
`choice`, `integer`, `number`, `flag`, `wrap`) are public so each package parses its own section.
"""

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import math
from typing import Any

import ml_collections

from eva_jax.models import architectures
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.solver import config as solver_config  # its parse() calls back into the validators below


class ConfigError(ValueError):
  """A config field has a wrong type, unknown name or out-of-range value."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  name: str  # key of architectures.ARCHITECTURES
  param_dtype: str  # "float32" or "bfloat16"
  checkpoint: str  # official Gemma checkpoint directory; "" = random init
  tokenizer: str  # sentencepiece .model path; "" = the embedded tokenizer
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


def get(config: ml_collections.ConfigDict, field: str, kind: type | tuple[type, ...]) -> Any:
  """The value at dotted `field` (e.g. "solver.beta"), checked to be of `kind`."""
  node: Any = config
  for part in field.split("."):
    if part not in node:
      raise ConfigError(f"config.{field}: missing")
    node = node[part]
  if kind is int and isinstance(node, bool) or not isinstance(node, kind):
    names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
    raise ConfigError(f"config.{field}: expected {names}, got {node!r} ({type(node).__name__})")
  return node


def choice(config, field: str, allowed: Sequence[str]) -> str:
  value = get(config, field, str)
  if value not in allowed:
    raise ConfigError(f"config.{field}: {value!r} is not one of {sorted(allowed)}")
  return value


def integer(config, field: str, *, low: int, high: int | None = None) -> int:
  value = get(config, field, int)
  if value < low or (high is not None and value > high):
    bound = f">= {low}" if high is None else f"in [{low}, {high}]"
    raise ConfigError(f"config.{field}: {value} must be {bound}")
  return value


def number(config, field: str, *, low: float | None = None, high: float | None = None) -> float:
  """A finite float (ints accepted) in [low, high]; either bound may be None (unbounded)."""
  value = get(config, field, (int, float))
  if isinstance(value, bool) or not math.isfinite(value):
    raise ConfigError(f"config.{field}: expected a finite number, got {value!r}")
  if (low is not None and value < low) or (high is not None and value > high):
    raise ConfigError(f"config.{field}: {value} must be in [{low}, {high}]")
  return float(value)


def flag(config, field: str) -> bool:
  return get(config, field, bool)


def wrap(field: str, fn: Callable[[], Any]) -> Any:
  """Runs a library validator and re-raises its ValueError under the field's name."""
  try:
    return fn()
  except ValueError as e:
    raise ConfigError(f"config.{field}: {e}") from None


def parse(config: ml_collections.ConfigDict, num_devices: int) -> RunConfig:
  """Validates `config` for a run on `num_devices` devices and returns the typed `RunConfig`."""
  name = choice(config, "model.name", list(architectures.ARCHITECTURES))
  model = ModelConfig(
    name=name,
    param_dtype=choice(config, "model.param_dtype", list(architectures.DTYPES)),
    checkpoint=get(config, "model.checkpoint", str),
    tokenizer=get(config, "model.tokenizer", str),
    logprob_chunk=integer(config, "model.logprob_chunk", low=1),
  )
  if model.tokenizer_kind != "embedded" and not model.tokenizer:
    raise ConfigError(f"config.model.tokenizer: model {name!r} needs the path of its Gemma tokenizer .model")
  if model.tokenizer_kind != "embedded" and not model.checkpoint:
    raise ConfigError(f"config.model.checkpoint: model {name!r} needs the path of its Gemma checkpoint")

  shape = get(config, "mesh.shape", (dict, ml_collections.ConfigDict))
  for axis in dict(shape):
    get(config, f"mesh.shape.{axis}", int)
  rules = tuple(tuple(rule) for rule in get(config, "mesh.rules", (tuple, list)))
  mesh = MeshConfig(
    shape=wrap("mesh.shape", lambda: mesh_lib.resolve_mesh_shape(dict(shape), num_devices)),
    rules=wrap("mesh.rules", lambda: partition.validate_rules(rules) or rules),
  )
  return RunConfig(
    seed=integer(config, "seed", low=0),
    model=model,
    mesh=mesh,
    check=CheckConfig(num_problems=integer(config, "check.num_problems", low=1, high=4096)),
    solver=solver_config.parse(config),
  )
