"""Per-difficulty exact match and reward on the embedded addition task."""

import math

import pytest

from eva_jax.evaluation import task_report
from eva_jax.tasks import addition

EASY_A = addition.Problem((3, 4))  # "1+1", answer "Reversed sum: 7"
EASY_B = addition.Problem((5, 2), template=2)  # "1+1", answer "Reversed sum: 7"
MEDIUM = addition.Problem((12, 34))  # "2+2", 46 -> "Reversed sum: 64"


def test_buckets_in_first_appearance_order_with_hand_computed_numbers(task):
  prompts = [MEDIUM.prompt, EASY_A.prompt, EASY_B.prompt, MEDIUM.prompt]
  responses = ["Reversed sum: 64", "Reversed sum: 8", "  Reversed sum: 7\n", "Reversed sum: 65"]
  report = task_report.report(task, prompts, responses)
  medium, easy = report.buckets
  assert (medium.name, medium.count, medium.exact_match) == ("2+2", 2, 0.5)
  assert medium.mean_reward == pytest.approx((1.0 + 0.8 * 1 / 2) / 2)  # "65": one of two digits right
  assert (easy.name, easy.count, easy.exact_match, easy.mean_reward) == ("1+1", 2, 0.5, 0.5)
  assert report.overall.count == 4 and report.overall.exact_match == 0.5
  assert report.overall.mean_reward == pytest.approx((1.0 + 0.4 + 0.0 + 1.0) / 4)


def test_given_rewards_replace_the_task_reward_and_nan_is_left_out(task):
  prompts = [EASY_A.prompt, EASY_A.prompt, MEDIUM.prompt]
  report = task_report.report(
    task, prompts, ["x", "Reversed sum: 7", "y"], [0.25, float("nan"), float("nan")]
  )
  easy, medium = report.buckets
  assert easy.mean_reward == 0.25 and easy.exact_match == 0.5
  assert math.isnan(medium.mean_reward) and medium.exact_match == 0.0
  assert report.overall.mean_reward == 0.25


def test_metrics_and_table(task):
  report = task_report.report(task, [EASY_A.prompt, MEDIUM.prompt], ["Reversed sum: 7", ""])
  assert report.metrics("eval") == {
    "eval/exact_match": 0.5,
    "eval/task_reward": 0.5,
    "eval/exact_match/1+1": 1.0,
    "eval/task_reward/1+1": 1.0,
    "eval/exact_match/2+2": 0.0,
    "eval/task_reward/2+2": 0.0,
  }
  lines = report.table().splitlines()
  assert lines[0].split() == ["bucket", "n", "exact", "reward"]
  assert lines[1].split() == ["1+1", "1", "100.0%", "1.000"]
  assert lines[3].split() == ["all", "2", "50.0%", "0.500"]


def test_rejects_foreign_prompts_and_mismatched_lengths(task):
  with pytest.raises(ValueError, match="not a prompt of task 'addition'"):
    task_report.report(task, ["Write a poem."], ["no"])
  with pytest.raises(ValueError, match="2 prompts but 1 responses"):
    task_report.report(task, [EASY_A.prompt, MEDIUM.prompt], ["x"])
  with pytest.raises(ValueError, match="rewards"):
    task_report.report(task, [EASY_A.prompt], ["x"], [0.1, 0.2])
