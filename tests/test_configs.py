"""Every config file loads and validates; the paper configs run end to end with their `runlocal` shrink."""

import importlib
import pathlib

import jax
import pytest

from eva_jax import config as config_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.loop import runner

CONFIGS = sorted(p.stem for p in pathlib.Path("configs").glob("*.py") if p.stem != "__init__")
# What a user must fill in for the paper configs (paths are not opened by validation).
REQUIRED = {
  "model.checkpoint": "/ckpts/gemma2-9b-it",
  "model.tokenizer": "/ckpts/tokenizer.model",
  "pool.seed_path": "/data/prompts.jsonl",
  "reward.url": "http://127.0.0.1:8000/score",
  "creator.llm.base_url": "http://127.0.0.1:8001/v1",
  "creator.llm.model": "rewriter",
  "eval.prompts_path": "/data/heldout.jsonl",
}


def _fill(config):
  for key, value in REQUIRED.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    if leaf in node and node[leaf] == "":
      node[leaf] = value
  return config


@pytest.mark.parametrize("name", CONFIGS)
def test_config_file_validates(name):
  config = _fill(importlib.import_module(f"configs.{name}").get_config())
  cfg = config_lib.parse(config, 8)
  assert cfg.model.name and cfg.solver.loss


@pytest.mark.parametrize("name", ["gemma2_9b_dpo", "gemma2_9b_rloo"])
def test_paper_config_runs_one_tiny_round_with_runlocal(name, tmp_path):
  config = importlib.import_module(f"configs.{name}").get_config("runlocal")
  cfg = config_lib.parse(config, jax.device_count())
  summary = runner.run(cfg, cfg.loop, tmp_path, config_lib.flatten(config))
  assert len(pool_lib.Pool(tmp_path / "pool").generations()) >= 2  # the creator ran
  assert "eval/reward" in summary["rounds"][-1]["eval"]
