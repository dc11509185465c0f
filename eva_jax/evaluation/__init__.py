"""Evaluation: held-out reward and win rates with bootstrap CIs, per-difficulty task reports, and
answer files for Arena-Hard, AlpacaEval and MT-Bench (judged by their own tools)."""
