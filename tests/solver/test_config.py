"""The config.solver section: defaults validate, every bad field is named, optimizers build."""

import jax.numpy as jnp
import numpy as np
import pytest

from configs import quickstart
from eva_jax import config as config_lib
from eva_jax.solver import config as solver_config
from eva_jax.solver import optim


def test_quickstart_solver_section_parses():
  cfg = solver_config.parse(quickstart.get_config())
  assert cfg.loss == "dpo" and not cfg.online and cfg.optimizer.name == "adamw"


@pytest.mark.parametrize(
  "field, value, message",
  [
    ("loss", "kto", "config.solver.loss: 'kto' is not one of"),
    ("beta", 0.0, "config.solver.beta: 0.0 must be in"),
    ("beta", float("nan"), "config.solver.beta: expected a finite number"),
    ("label_smoothing", 0.7, "config.solver.label_smoothing: 0.7 must be in"),
    ("micro_batches", 5, "config.solver.micro_batches: batch_size 8 does not split into 5"),
    ("rloo_k", 1, "config.solver.rloo_k: 1 must be >= 2"),
    ("updates_per_batch", 2, "config.solver.updates_per_batch: > 1 needs solver.clip_eps > 0"),
    ("optimizer.name", "lion", "config.solver.optimizer.name: 'lion' is not one of"),
    ("optimizer.warmup_frac", 1.5, "config.solver.optimizer.warmup_frac: 1.5 must be in"),
    ("epochs", "2", "config.solver.epochs: expected int"),
  ],
)
def test_bad_fields_are_named(field, value, message):
  config = quickstart.get_config()
  node = config.solver
  *parents, leaf = field.split(".")
  for p in parents:
    node = node[p]
  with node.ignore_type():
    node[leaf] = value
  with pytest.raises(config_lib.ConfigError, match=message.replace("(", r"\(")):
    solver_config.parse(config)


def test_cdpo_needs_label_smoothing_and_rloo_groups_must_fit():
  config = quickstart.get_config()
  config.solver.loss = "cdpo"
  with pytest.raises(config_lib.ConfigError, match="config.solver.label_smoothing: loss 'cdpo' needs"):
    solver_config.parse(config)
  config.solver.loss, config.solver.batch_size, config.solver.micro_batches = "rloo", 32, 4
  config.solver.rloo_k = 16
  with pytest.raises(config_lib.ConfigError, match="of whole groups of rloo_k=16"):
    solver_config.parse(config)


@pytest.mark.parametrize("name", optim.SCHEDULES)
def test_schedules_warm_up_then_decay(name):
  cfg = optim.OptimizerConfig(learning_rate=1.0, schedule=name, warmup_frac=0.1)
  lr = optim.schedule(cfg, 100)
  values = np.array([float(lr(jnp.asarray(s))) for s in range(100)])
  np.testing.assert_allclose(values[:11], np.linspace(0, 1, 11), atol=1e-6)
  if name == "constant":
    np.testing.assert_allclose(values[10:], 1.0)
  else:
    assert np.all(np.diff(values[10:]) <= 1e-7) and values[-1] < 0.05
  if name == "cosine":
    np.testing.assert_allclose(values[10 + 45], 0.5, atol=0.02)  # half-way down the cosine
