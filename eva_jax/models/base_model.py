"""The embedded task's shipped base model: the "instruct model" the quickstart and the ablation start from.

eva post-trains an instruct model; the embedded demo does too. The base is a tiny Gemma-architecture
model trained once, offline, by SFT on reference answers drawn from `RECIPE`'s difficulty mix: mostly
seed-difficulty sums (operands of at most 2 digits), where it ends reliable, plus a small share of
sums with a 3-digit operand, where it ends right only sometimes. That share places the solver's
frontier one step beyond the seeds, where its 6 samples disagree (a reward spread for the creator's
regret proxy) and where training on its own correct answers raises held-out accuracy: the mechanism
eva needs (see bench/RESULTS.md, "The frontier").

This module holds the recipe and loads the shipped asset; `eva_jax/jobs/train_base_model.py`
trains and re-measures it. The params ship as one msgpack file (`flax.serialization`), the recipe
and the held-out table that came out of it in a JSON file beside it.
"""

import dataclasses
import json
import pathlib

import flax
import jax
import numpy as np

from eva_jax.models import params as params_lib
from eva_jax.tasks import addition

ASSETS = pathlib.Path(__file__).parent.parent / "assets"
PARAMS_PATH = ASSETS / "base_tiny.msgpack"
RECORD_PATH = ASSETS / "base_tiny.json"
TABLE_PER_BUCKET = 100  # held-out prompts per bucket in the recorded table
TABLE_TOLERANCE = 0.03  # recorded vs re-measured exact match per bucket (float rounding of other CPUs)


@dataclasses.dataclass(frozen=True)
class Recipe:
  """How the base is trained: model, SFT schedule and the difficulty mix of its training sums."""

  model: str = "tiny"  # architecture name (eva_jax/models/architectures.py)
  steps: int = 3000  # SFT steps
  batch_size: int = 64  # sums per step
  learning_rate: float = 2e-3  # peak (cosine, 5% warmup)
  seed: int = 0  # init and data seed
  frontier_share: float = 0.03  # share of training sums with one 3-digit operand (the frontier)
  seed_max_digits: int = 2  # seed difficulty: operands of at most this many digits
  reversed_operands: bool = True  # operands written least-significant digit first (task addition_lsb)


RECIPE = Recipe()
# The tasks whose prompts the base was trained on (the embedded sums in the base's prompt format).
TASKS = ("addition_lsb", "addition_lsb_exact") if RECIPE.reversed_operands else ("addition", "addition_exact")


def training_problem(rng: np.random.Generator, recipe: Recipe) -> addition.Problem:
  """One training sum: seed difficulty, or with probability `frontier_share` a 3-digit operand."""
  if rng.random() < recipe.frontier_share:
    other = int(rng.integers(1, recipe.seed_max_digits + 2))
    digits = [recipe.seed_max_digits + 1, other]
    rng.shuffle(digits)
    operands = tuple(addition.random_operand(rng, d) for d in digits)
    template = int(rng.integers(len(addition.PROMPT_TEMPLATES)))
    return addition.Problem(operands, template, recipe.reversed_operands)
  return addition.random_problem(rng, recipe.seed_max_digits, reversed_operands=recipe.reversed_operands)


def load_record() -> dict:
  if not RECORD_PATH.exists():
    raise FileNotFoundError(
      f"no base model record at {RECORD_PATH}: rebuild with python -m eva_jax.jobs.train_base_model"
    )
  return json.loads(RECORD_PATH.read_text())


def load_params(model, shardings):
  """The shipped base's params, placed in `shardings`; checks they fit `model`."""
  if not PARAMS_PATH.exists():
    raise FileNotFoundError(
      f"no base model at {PARAMS_PATH}: rebuild with python -m eva_jax.jobs.train_base_model"
    )
  loaded = flax.serialization.msgpack_restore(PARAMS_PATH.read_bytes())
  params_lib._check_structure(loaded, params_lib.abstract_params(model), f"base model {PARAMS_PATH}")
  return jax.device_put(loaded, shardings)


def recipe_with(overrides: list[str]) -> Recipe:
  """`RECIPE` with "field=value" overrides (the CLI's --set)."""
  values = {}
  for item in overrides:
    name, _, value = item.partition("=")
    if name not in {f.name for f in dataclasses.fields(Recipe)}:
      raise ValueError(f"--set: unknown recipe field {name!r}")
    values[name] = type(getattr(RECIPE, name))(value)
  return dataclasses.replace(RECIPE, **values)
