"""The shipped base model: it loads into the tiny architecture and still scores its recorded table."""

import dataclasses

import jax
import numpy as np
import pytest

from eva_jax.jobs import train_base_model
from eva_jax.models import base_model
from eva_jax.models import params as params_lib
from eva_jax.tasks import addition


@pytest.fixture(scope="module")
def record():
  return base_model.load_record()


def test_asset_fits_the_recorded_architecture(tiny_model, mesh1, record):
  assert record["recipe"]["model"] == "tiny"
  params = base_model.load_params(tiny_model, params_lib.shardings_for(tiny_model, mesh1))
  expected = params_lib.abstract_params(tiny_model)
  shapes = jax.tree.map(lambda x: tuple(x.shape), params)
  assert shapes == jax.tree.map(lambda x: tuple(x.shape), expected)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
  # A few MB, as documented (float32, 0.8M params).
  assert 1e6 < base_model.PARAMS_PATH.stat().st_size < 8e6


def test_recorded_table_has_the_frontier_the_curriculum_needs(record):
  table = record["table"]
  assert set(table) == {"+".join(map(str, b)) for b in addition.EVAL_BUCKETS}
  assert all(table[b]["exact"] >= 0.9 for b in addition.EASY_BUCKETS)
  frontier = table[addition.FRONTIER_BUCKET]
  assert 0.1 <= frontier["exact"] <= 0.7
  assert frontier["pass_at_n"] > frontier["exact"]


def test_shipped_params_reproduce_the_recorded_table(record):
  table, worst = train_base_model.check_shipped(record, num_samples=0)
  assert worst <= base_model.TABLE_TOLERANCE, (table, record["table"])


def test_the_rebuild_command_uses_the_recorded_recipe(record):
  """`python -m eva_jax.jobs.train_base_model` trains `RECIPE`: it must be the recipe the asset came from."""
  assert dataclasses.asdict(base_model.RECIPE) == record["recipe"]


def test_recipe_overrides_are_typed_and_checked():
  recipe = base_model.recipe_with(["steps=10", "frontier_share=0.5"])
  assert recipe.steps == 10 and recipe.frontier_share == 0.5
  with pytest.raises(ValueError, match="unknown recipe field 'stepz'"):
    base_model.recipe_with(["stepz=1"])


def test_a_missing_asset_names_the_rebuild_command(tiny_model, mesh1, monkeypatch, tmp_path):
  monkeypatch.setattr(base_model, "PARAMS_PATH", tmp_path / "none.msgpack")
  with pytest.raises(FileNotFoundError, match="python -m eva_jax.jobs.train_base_model"):
    base_model.load_params(tiny_model, params_lib.shardings_for(tiny_model, mesh1))
