"""Rewards: one protocol (`RewardSource.score(prompts, responses) -> float32[N]`), three sources.

- `task`: the graded, programmatic reward of a registered task (`task_source.py`);
- `model`: a JAX reward model, a Gemma backbone with a scalar head (`reward_model.py`,
  `model_source.py`), trained by Bradley-Terry on preference pairs (`bradley_terry.py`,
  `preferences.py`; the training job is `eva_jax/jobs/train_reward_model.py`);
- `remote`: an HTTP client for a reward server (`remote.py`, protocol in its docstring), with the
  matching server (`server.py`; its command line is `eva_jax/jobs/serve_rewards.py`).

`factory.make_reward_source(config.reward)` builds the configured one; `nonfinite.py` handles NaN/inf
rewards by policy; `config.py` parses `config.reward` and `config.reward_model`.
"""
