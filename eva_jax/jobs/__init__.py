"""The commands, on top of the library: each `--mode` of `eva_jax.main` and the standalone jobs.

train (the eva run and its report), evaluate (`--mode=eval`), model_check (`--mode=check`),
export_hf (`--mode=export_hf`), train_reward_model (`--mode=train_reward_model`), serve_rewards
(`python -m eva_jax.jobs.serve_rewards`) and train_base_model (`python -m eva_jax.jobs.train_base_model`).
Nothing in the library imports this package.
"""
