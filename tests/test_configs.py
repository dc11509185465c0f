"""Every config file loads and validates; the paper configs are the paper's, field by field, and run
end to end with their `runlocal` shrink; every config loads from any current directory."""

import importlib
import math
import os
import pathlib
import subprocess
import sys

import jax
import pytest

from eva_jax import config as config_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.loop import runner
from tests.hang_guard import HANG_GUARD_S

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
  summary = runner.run(cfg, tmp_path, config_lib.flatten(config))
  assert len(pool_lib.Pool(tmp_path / "pool").generations()) >= 2  # the creator ran
  assert "eval/reward" in summary["rounds"][-1]["eval"]


# Every field the paper configs' docstrings state (configs/gemma2_9b_dpo.py, gemma2_9b_rloo.py and
# ../shared/DESIGN.md's paper settings), and every quickstart setting beyond the paper, by value.
PAPER_SHARED = {
  "model.name": "gemma2_9b",
  "model.param_dtype": "bfloat16",
  "loop.num_samples": 6,
  "loop.temperature": 0.7,
  "loop.top_p": 0.9,
  "loop.max_new_tokens": 1024,
  "loop.max_cache_length": 2048,
  "loop.warmstart_steps": 0,
  "loop.old_fraction": 0.2,
  "loop.min_chosen_reward": -math.inf,
  "loop.min_gap": 0.0,
  "loop.rehearse": False,
  "loop.max_train_pairs": 0,
  "loop.prompts": "evolve",
  "pool.num_seeds": 0,
  "pool.max_size": 0,
  "reward.kind": "remote",
  "reward.task": "",
  "creator.info_metric": "gap",
  "creator.selection": "importance_weighted",
  "creator.sample_frac": 0.25,
  "creator.num_evolutions": 4,
  "creator.evolver": "llm",
  "creator.task": "",
  "creator.methods": {},
  "creator.llm.temperature": 0.88,
  "creator.llm.max_new_tokens": 666,
  "creator.filters.dedup_exact": False,
  "creator.filters.dedup_normalised": False,
  "creator.filters.drop_empty": False,
  "creator.filters.drop_bad_chars": False,
  "creator.filters.min_tokens": 0,
  "creator.filters.max_tokens": 0,
  "creator.filters.user_filter": "",
  "solver.max_prompt_len": 1024,
  "solver.max_response_len": 1024,
  "solver.nll_weight": 0.0,
  "solver.label_smoothing": 0.0,
  "solver.micro_batches": 1,
  "solver.optimizer.name": "adamw",
  "solver.optimizer.learning_rate": 5e-7,
  "solver.optimizer.schedule": "cosine",
  "solver.optimizer.warmup_frac": 0.1,
  "solver.optimizer.weight_decay": 0.0,
  "task": "",
}
PAPER = {
  "gemma2_9b_dpo": {
    **PAPER_SHARED,
    "loop.mode": "offline",
    "loop.rounds": 3,
    "solver.loss": "dpo",
    "solver.beta": 0.05,
    "solver.epochs": 2,
    "solver.batch_size": 64,
  },
  "gemma2_9b_rloo": {
    **PAPER_SHARED,
    "loop.mode": "online",
    "loop.draw": "weighted",
    "loop.creator_every_steps": 100,
    "solver.loss": "rloo",
    "solver.rloo_k": 4,
    "solver.beta": 0.05,
    "solver.batch_size": 64,
  },
}


# The other configs' docstrings (and docs/quickstart.md for the quickstart) state these, by value.
STATED = {
  "quickstart": {
    "task": "addition_lsb",
    "model.name": "tiny",
    "model.init": "base",
    "loop.mode": "offline",
    "loop.prompts": "evolve",
    "loop.rounds": 7,
    "loop.num_samples": 6,
    "pool.num_seeds": 256,
    "creator.evolver": "task",
    "creator.info_metric": "gap",
    "creator.selection": "importance_weighted",
    "creator.sample_frac": 0.25,
    "creator.num_evolutions": 4,
    "loop.old_fraction": 0.7,
    "reward.task": "addition_lsb_exact",
    "loop.min_chosen_reward": 1.0,
    "loop.rehearse": True,
    "solver.loss": "dpo",
    "solver.beta": 0.1,
    "solver.optimizer.learning_rate": 2e-4,
    "solver.batch_size": 8,
    "solver.epochs": 2,
    "solver.nll_weight": 1.0,
    "eval.per_bucket": 100,
  },
  "quickstart_rloo": {
    "loop.mode": "online",
    "solver.loss": "rloo",
    "solver.rloo_k": 4,
    "solver.batch_size": 64,  # 16 prompts x 4 samples
    "loop.draw": "weighted",
    "loop.creator_every_steps": 20,
    "loop.steps": 200,
  },
  "gemma3_270m": {
    "model.name": "gemma3_270m",
    "model.param_dtype": "float32",
    "mesh.shape": {"data": -1, "fsdp": 1, "tensor": 1},
    "solver.micro_batches": 16,
    "loop.sample_batch_size": 32,
    "loop.num_samples": 6,
    "loop.temperature": 0.7,
    "loop.top_p": 0.9,
    "loop.max_new_tokens": 1024,
    "loop.max_cache_length": 2048,
    "solver.loss": "dpo",
    "solver.beta": 0.05,
    "solver.optimizer.learning_rate": 5e-7,
    "solver.optimizer.schedule": "cosine",
    "solver.optimizer.warmup_frac": 0.1,
    "solver.epochs": 2,
    "solver.batch_size": 64,
    "loop.rounds": 3,
  },
  "gemma2_9b": {
    "model.name": "gemma2_9b",
    "model.param_dtype": "bfloat16",
    "mesh.shape": {"data": 1, "fsdp": -1, "tensor": 4},
    "solver.batch_size": 32,
    "solver.max_prompt_len": 64,
    "solver.max_response_len": 32,
    "solver.optimizer.name": "adamw",
  },
  "reward_model": {"model.name": "tiny"},
}


def test_every_config_file_is_checked_field_by_field():
  assert set(CONFIGS) == set(PAPER) | set(STATED)


def _value(config, key):
  node = config
  for part in key.split("."):
    node = node[part]
  return node.to_dict() if hasattr(node, "to_dict") else node


DOCUMENTED = PAPER | STATED


@pytest.mark.parametrize(
  "name, key", [(name, key) for name, fields in DOCUMENTED.items() for key in fields], ids=lambda x: str(x)
)
def test_config_field_is_what_its_docs_state(name, key):
  value = _value(importlib.import_module(f"configs.{name}").get_config(), key)
  source = "the paper's" if name in PAPER else "its docs state"
  assert value == DOCUMENTED[name][key], (
    f"configs/{name}.py: {key} = {value!r}, {source} {DOCUMENTED[name][key]!r}"
  )


@pytest.mark.parametrize("name", sorted(PAPER))
def test_runlocal_shrinks_sizes_only_and_keeps_the_papers_method(name):
  config = importlib.import_module(f"configs.{name}").get_config("runlocal")
  for key in (
    "loop.rehearse",
    "loop.old_fraction",
    "solver.nll_weight",
    "loop.min_chosen_reward",
    "solver.loss",
  ):
    assert _value(config, key) == PAPER[name][key], key


def test_rehearsal_under_sppo_is_refused_naming_the_field():
  config = importlib.import_module("configs.quickstart").get_config()
  config.solver.loss = "sppo"
  with pytest.raises(config_lib.ConfigError, match=r"config\.loop\.rehearse: .*'sppo'"):
    config_lib.parse(config, 8)
  config.loop.rehearse = False
  assert config_lib.parse(config, 8).solver.loss == "sppo"


def test_a_config_built_on_its_siblings_loads_from_any_current_directory(tmp_path):
  """gemma2_9b_rloo.py builds on gemma2_9b_dpo.py, gemma2_9b.py and quickstart.py: the deepest chain."""
  config_file = pathlib.Path("configs/gemma2_9b_rloo.py").resolve()
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  command = [sys.executable, "-m", "eva_jax.main", f"--config={config_file}", f"--workdir={tmp_path / 'run'}"]
  command += ["--mode=plan", "--plan_topology=v5p-128"]
  result = subprocess.run(
    command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=HANG_GUARD_S
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert "peak: train step" in result.stdout + result.stderr
