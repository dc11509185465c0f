"""Bradley-Terry training on the tiny Gemma: the loss, sharded optimizer state, and the whole job learning a preference."""

import json

import jax
import numpy as np
import optax
import pytest

from configs import reward_model as reward_model_config
from eva_jax import config as config_lib
from eva_jax.jobs import train_reward_model
from eva_jax.models import batching
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.rewards import bradley_terry
from eva_jax.rewards import config as reward_config
from eva_jax.rewards import factory
from eva_jax.rewards import reward_model


def _training_config(**overrides):
  config = reward_model_config.get_config()
  config.mesh.shape = {"data": 2, "fsdp": 2, "tensor": 2}
  for key, value in overrides.items():
    config.reward_model[key] = value
  return config


def test_loss_is_minus_log_sigmoid_of_the_reward_margin(tiny_model, reward_params, tokenizer):
  batch = batching.make_batch(
    tokenizer, ["Add 1 and 2.", "Add 4 and 4."] * 2, ["Reversed sum: 3", "Reversed sum: 8", "Reversed s", "8"]
  )
  tokens, mask = batch.tokens, batch.input_mask
  loss, metrics = bradley_terry.loss_fn(
    tiny_model, reward_params, (tokens[:2], mask[:2], tokens[2:], mask[2:])
  )
  r = np.asarray(reward_model.rewards(tiny_model, reward_params, tokens, mask))
  margin = r[:2] - r[2:]
  np.testing.assert_allclose(float(loss), np.mean(np.log1p(np.exp(-margin))), rtol=1e-5)
  assert float(metrics["accuracy"]) == np.mean(margin > 0)
  np.testing.assert_allclose(float(metrics["margin"]), margin.mean(), rtol=1e-5, atol=1e-6)


def test_optimizer_moments_are_sharded_like_their_params(tiny_model):
  mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  cfg = reward_config.parse_training(_training_config())
  optimizer = bradley_terry.make_optimizer(cfg)
  _, param_shardings, opt_shardings = bradley_terry.jitted_train_step(tiny_model, optimizer, mesh)
  adam = opt_shardings[1][0]  # chain(clip, adamw) -> adamw = chain(scale_by_adam, ...)
  assert isinstance(adam, optax.ScaleByAdamState)
  for moments in (adam.mu, adam.nu):
    assert jax.tree.leaves(moments) == jax.tree.leaves(param_shardings)
  assert adam.count.spec == jax.sharding.PartitionSpec()


def test_training_learns_a_held_out_preference_and_writes_a_loadable_reward_model(tmp_path, capsys):
  config = _training_config(train_pairs=512, eval_pairs=96, steps=40, batch_size=16, warmup_steps=4)
  cfg = config_lib.parse(config, num_devices=8)
  figures = train_reward_model.run(cfg, reward_config.parse_training(config), tmp_path, config)
  assert figures == json.loads((tmp_path / train_reward_model.FIGURES_FILE).read_text())
  assert (figures["train_pairs"], figures["eval_pairs"], figures["steps"]) == (512, 96, 40)
  assert figures["accuracy"] > 0.9 and figures["accuracy"] > figures["accuracy_before"] + 0.2
  for kind in ("truncate", "repeat", "garble"):
    assert figures[f"accuracy_{kind}"] > 0.8
  assert figures["loss_last"] < 0.5 * figures["loss_first"]
  assert figures["reload_equal"]
  assert "held-out pairs" in capsys.readouterr().out

  # The checkpoint is what the "model" reward source loads: it prefers the reference answer.
  source = factory.make_reward_source(
    reward_config.RewardConfig(kind="model", checkpoint=figures["checkpoint"])
  )
  prompts = ["What is 305 + 86?", "Add 7, 12 and 40."]
  rewards = source.score(
    prompts * 2, ["Reversed sum: 193", "Reversed sum: 95", "Reversed", "Reversed sum: 95 Reversed sum: 95"]
  )
  assert rewards[0] > rewards[2] and rewards[1] > rewards[3]
  assert json.loads((tmp_path / "reward_model" / "config.json").read_text())["reward_model"]["steps"] == 40


def test_batch_size_must_split_over_the_mesh(tmp_path):
  config = _training_config(batch_size=6)
  with pytest.raises(ValueError, match="batch_size=6 must be a multiple of data x fsdp = 4"):
    train_reward_model.run(
      config_lib.parse(config, num_devices=8), reward_config.parse_training(config), tmp_path
    )
