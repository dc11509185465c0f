"""The solver phases of a round: one compiled DPO step serves every round, whatever its pair count."""

import jax
import numpy as np

from configs import quickstart
from eva_jax.loop import training
from eva_jax.models import params as params_lib
from eva_jax.solver import config as solver_config
from eva_jax.solver import optim
from eva_jax.tasks import addition


def _pairs(tokenizer, n: int, seed: int):
  problems = [addition.random_problem(np.random.default_rng([seed, i]), 2) for i in range(n)]
  encode = lambda text: tokenizer.encode(text)
  prompts = [encode(p.prompt) for p in problems]
  chosen = [encode(p.answer) for p in problems]
  rejected = [encode(p.answer[:-1] + str((int(p.answer[-1]) + 1) % 10)) for p in problems]
  return prompts, chosen, rejected


def test_preference_epochs_of_different_lengths_share_one_compiled_step(
  tokenizer, tiny_model, tiny_params, mesh1
):
  config = quickstart.get_config()
  config.solver.batch_size, config.solver.epochs = 4, 1
  solver = solver_config.parse(config)
  shardings = params_lib.shardings_for(tiny_model, mesh1)
  learning_rates = []
  params = jax.tree.map(np.array, tiny_params)
  for n, seed in ((8, 0), (20, 1)):  # 2 then 5 steps: schedules of different lengths
    rates = []
    params, metrics = training.preference_epochs(
      tiny_model,
      jax.tree.map(np.array, params),
      *_pairs(tokenizer, n, seed),
      solver=solver,
      mesh=mesh1,
      param_shardings=shardings,
      seed=seed,
      on_metrics=lambda i, m, rates=rates: rates.append(m["learning_rate"]),
    )
    learning_rates.append(rates)
    assert np.isfinite(metrics["loss"])
  step = training.preference_step(
    training._setup(tiny_model, tiny_params, solver.optimizer, 1, mesh1, shardings, 1, 128)[1], solver
  )
  assert step.jitted._cache_size() == 1  # both phases ran the one program
  # Each phase's schedule spans its own steps: 2 and 5, decaying to its own end.
  for rates, total in zip(learning_rates, (2, 5)):
    expected = [float(optim.learning_rate(solver.optimizer, s, total)) for s in range(total)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
  assert learning_rates[0][1] < learning_rates[1][1]  # step 1 is half-way down only in the short phase
