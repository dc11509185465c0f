"""Fixtures: a briefly fine-tuned tiny model (it writes the answer format and gets some sums partly
right) and a recording stand-in for the sampler where only the turn logic is under test."""

import jax
import numpy as np
import pytest

from eva_jax.models import batching
from eva_jax.models import params as params_lib
from eva_jax.solver import optim
from eva_jax.solver import steps
from eva_jax.solver import train_state
from eva_jax.tasks import addition
from eva_jax.tasks import get_task


class Echo:
  """A deterministic `generation.Respond` that records its calls: checks turn order, context and
  temperatures without a model (the model's part is checked through the real sampler elsewhere)."""

  def __init__(self):
    self.calls = []

  def __call__(self, prompts, key, temperature):
    self.calls.append((key, temperature, list(prompts)))
    return [f"answer {key}.{i}" for i in range(len(prompts))]

  def count_tokens(self, text):
    return len(text.split())


@pytest.fixture
def echo():
  return Echo()


@pytest.fixture(scope="session")
def task():
  return get_task("addition")


@pytest.fixture(scope="session")
def sft_params(tokenizer, tiny_model, tiny_params, mesh1):
  """20 SFT steps on 64 short sums from the random init (5-10 s on 2 cores)."""
  rng = np.random.default_rng(0)
  problems = [addition.random_problem(rng, 2) for _ in range(64)]
  batch = steps.sequence_batch(
    batching.make_batch(tokenizer, [p.prompt for p in problems], [p.answer for p in problems])
  )
  opt_cfg = optim.OptimizerConfig(learning_rate=1e-2, warmup_frac=0.0, schedule="constant")
  optimizer = optim.make_optimizer(opt_cfg)
  param_shardings = params_lib.shardings_for(tiny_model, mesh1)
  shardings = train_state.state_shardings(optimizer, param_shardings, mesh1)
  copy = jax.tree.map(lambda x: x.copy(), tiny_params)  # the step donates its state
  state = train_state.create_train_state(copy, optimizer, shardings, total_steps=20)
  step = steps.make_sft_step(steps.StepSettings(tiny_model, opt_cfg, shardings, mesh1))
  for _ in range(20):
    state, _ = step(state, batch, jax.random.key(0))
  return state.params
