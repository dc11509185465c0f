"""The summary's headline: task-independent frontier and easy-bucket figures from the round entries."""

import math

from eva_jax import tasks
from eva_jax.evaluation import headline


def _eval(exact_11, exact_22, exact_32, reward_32):
  return {
    "eval/exact_match/1+1": exact_11,
    "eval/exact_match/2+2": exact_22,
    "eval/exact_match/3+2": exact_32,
    "eval/task_reward/3+2": reward_32,
  }


def test_round0_and_last_evaluated_round():
  rounds = [
    {"round": 0, "eval": _eval(1.0, 0.95, 0.10, 0.5)},
    {"round": 1, "eval": _eval(1.0, 0.97, 0.20, 0.6)},
    {"round": 2, "eval": {}},  # not evaluated: the last evaluated round counts
  ]
  h = headline.headline(rounds, tasks.get_task("addition"), 12.5)
  assert h == {
    "seconds": 12.5,
    "frontier_bucket": "3+2",
    "frontier_exact_round0": 0.10,
    "frontier_exact_last": 0.20,
    "frontier_reward_round0": 0.5,
    "frontier_reward_last": 0.6,
    "easy_exact_round0": 0.95,
    "easy_exact_last": 0.97,
  }
  assert "3+2 exact 0.10 -> 0.20 (+0.10)" in headline.describe(h)


def test_no_task_gives_nan_figures():
  h = headline.headline([{"round": 0, "eval": {"eval/reward": 0.3}}], None, 1.0)
  assert math.isnan(h["frontier_exact_last"]) and h["seconds"] == 1.0
  assert "no task buckets" in headline.describe(h)
