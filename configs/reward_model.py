"""Bradley-Terry training of a reward model on the quickstart stack (tiny Gemma backbone, CPU).

    python -m eva_jax.main --config=configs/reward_model.py --workdir=/tmp/eva_rm --mode=train_reward_model

Hardware: any CPU; about a minute. The backbone is `config.model` (random init, or an official Gemma
checkpoint via --config.model.checkpoint); preference pairs are made from the embedded task (the
reference answer beats a corrupted copy). The reward model lands in `<workdir>/reward_model`; use it
with `--config.reward.kind=model --config.reward.checkpoint=<workdir>/reward_model`.
"""

import ml_collections

from eva_jax import config_files

quickstart = config_files.sibling(__file__, "quickstart")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  config = quickstart.get_config(arg)
  config.reward_model = ml_collections.ConfigDict()
  config.reward_model.task = "addition"  # Task whose graded reward labels the synthetic preference pairs.
  config.reward_model.corruptions = (
    "truncate",
    "repeat",
    "garble",
  )  # Rejected-response edits; "digit" is hard.
  config.reward_model.train_pairs = 2048  # Training pairs (one per distinct seed prompt).
  config.reward_model.eval_pairs = 256  # Held-out pairs, on the task's eval prompts (never trained on).
  config.reward_model.steps = 100  # Optimizer steps.
  config.reward_model.batch_size = 32  # Pairs per step; a multiple of the mesh's data x fsdp size.
  config.reward_model.learning_rate = 1e-3  # AdamW peak learning rate.
  config.reward_model.warmup_steps = 10  # Linear warm-up steps, then cosine decay to 0.
  config.reward_model.weight_decay = 0.01  # AdamW decoupled weight decay.
  config.reward_model.max_grad_norm = 1.0  # Global gradient-norm clip; 0 = off.
  return config
