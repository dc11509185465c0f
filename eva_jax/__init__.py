"""eva_jax: eva (Evolving Alignment via Asymmetric Self-Play) for Gemma models in JAX.

Layout: `models` (gemma architectures, tokenizer, chat template, log-probs, params),
`parallel` (device mesh and partition rules), `tasks` (the embedded verifiable task),
`config` (typed, validated run configuration), `main` (the command-line entry point).
"""
