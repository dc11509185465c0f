"""The task reward source and the factory's task kind: graded task rewards, batched, with progress."""

import numpy as np
import pytest

from eva_jax.rewards import config as reward_config
from eva_jax.rewards import factory
from eva_jax.rewards import task_source
from eva_jax.tasks import addition
from eva_jax.tasks import get_task


def test_task_rewards_equal_the_task_grade_in_order():
  task = get_task("addition")
  prompts = task.seed_prompts(7, 3)
  responses = [task.reference(p) for p in prompts[:3]] + [
    "Reversed sum: 0",
    "no idea",
    "Reversed sum: 1x",
    "5",
  ]
  source = factory.make_reward_source(reward_config.RewardConfig(kind="task", batch_size=2))
  rewards = source.score(prompts, responses)
  assert rewards.dtype == np.float32 and rewards.shape == (7,)
  np.testing.assert_array_equal(rewards, np.float32([task.reward(p, r) for p, r in zip(prompts, responses)]))
  np.testing.assert_array_equal(rewards[:3], 1.0)
  np.testing.assert_array_equal(rewards[4:], 0.0)  # malformed answers
  # Partial credit: "Reversed sum: 0" gets the share of digit positions it has right.
  problem = addition.parse_prompt(prompts[3])
  reference = problem.answer[len(addition.RESPONSE_PREFIX) :]
  expected = addition.PARTIAL_CREDIT * (reference[0] == "0") / len(reference)
  assert rewards[3] == pytest.approx(expected)
  source.close()


def test_progress_bar_only_for_jobs_of_more_than_one_batch(capfd):
  source = task_source.TaskRewardSource(get_task("addition"), batch_size=4)
  source.score(["What is 1 + 2?"] * 4, ["Reversed sum: 3"] * 4)
  assert "addition rewards" not in capfd.readouterr().err
  rewards = source.score(["What is 1 + 2?"] * 9, ["Reversed sum: 3"] * 9)
  assert "addition rewards: 100%" in capfd.readouterr().err
  np.testing.assert_array_equal(rewards, np.ones(9, np.float32))


@pytest.mark.parametrize(
  "prompts,responses,message",
  [
    (["a", "b"], ["x"], "2 prompts but 1 responses"),
    ("What is 1 + 2?", "3", "sequences of strings, not a single string"),
    (["a", 7], ["x", "y"], "prompt 1 is a int"),
  ],
)
def test_bad_inputs_are_refused(prompts, responses, message):
  with pytest.raises(ValueError, match=message):
    task_source.TaskRewardSource(get_task("addition")).score(prompts, responses)
