"""Online eva with RLOO on gemma-2-9b-it (the paper's online setting: Arena-Hard 52.6 -> 62.4).

    python -m eva_jax.main --config=configs/gemma2_9b_rloo.py --workdir=gs://BUCKET/eva_rloo \
      --config.model.checkpoint=... --config.model.tokenizer=... --config.pool.seed_path=... \
      --config.reward.url=... --config.creator.llm.base_url=... --config.creator.llm.model=...

The paper settings of configs/gemma2_9b_dpo.py, with RLOO: k=4 samples per prompt, the KL to the
reference folded into the reward, 16 prompts x 4 samples per step, prompts drawn by informativeness,
the creator every 100 steps. `:runlocal` shrinks it to the tiny model and the embedded task.
"""

from eva_jax import config_files

gemma2_9b = config_files.sibling(__file__, "gemma2_9b")
gemma2_9b_dpo = config_files.sibling(__file__, "gemma2_9b_dpo")


def get_config(arg: str | None = None):
  config = gemma2_9b_dpo.paper_settings(gemma2_9b.get_config())
  config.loop.mode = "online"  # RLOO steps.
  config.loop.steps = 1000  # RLOO steps.
  config.loop.draw = "weighted"  # Prompts drawn by informativeness.
  config.loop.creator_every_steps = 100  # Evolve the pool every 100 steps.
  config.loop.checkpoint_every_steps = 50  # Checkpoint interval.
  config.solver.loss = "rloo"  # The online solver.
  config.solver.rloo_k = 4  # Samples per prompt.
  config.solver.beta = 0.05  # KL weight.
  config.solver.batch_size = 64  # 16 prompts x 4 samples.
  config.solver.optimizer.learning_rate = 5e-7  # Peak lr.
  return gemma2_9b_dpo.runlocal(config) if arg == "runlocal" else config
