"""Config field validators shared by every config section: each error names its field.

`get(config, "solver.beta", float)` returns the value at a dotted path or raises `ConfigError`
such as `config.solver.beta: expected float, got '0.1' (str)`. Each package parses its own section
with these (eva_jax/solver/config.py, eva_jax/rewards/config.py, ...); eva_jax/config.py puts the
sections together.
"""

from collections.abc import Callable
from collections.abc import Sequence
import math
from typing import Any

import ml_collections


class ConfigError(ValueError):
  """A config field has a wrong type, unknown name or out-of-range value."""


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


def task_of(config, section: str) -> str:
  """The task `config.<section>.task` names: its own value, or `config.task` when it is "" (or absent)."""
  own = get(config, f"{section}.task", str)
  if own or "task" not in config:
    return own
  return get(config, "task", str)


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


def top_p(config, field: str) -> float:
  """A nucleus-sampling mass in (0, 1]: 0 would keep no token (1.0 = off)."""
  value = number(config, field, low=0.0, high=1.0)
  if value == 0:
    raise ConfigError(f"config.{field}: must be in (0, 1] (1.0 = off); 0 keeps no token")
  return value


def flag(config, field: str) -> bool:
  return get(config, field, bool)


def wrap(field: str, fn: Callable[[], Any]) -> Any:
  """Runs a library validator and re-raises its ValueError under the field's name."""
  try:
    return fn()
  except ValueError as e:
    raise ConfigError(f"config.{field}: {e}") from None
