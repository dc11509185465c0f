"""The NaN/inf policy: "drop" masks and reports the pairs by prompt id, "fail" stops with their ids."""

import numpy as np
import pytest

from eva_jax.rewards import nonfinite
from eva_jax.rewards import task_source
from eva_jax.tasks import get_task


def test_drop_masks_the_nonfinite_pairs_and_names_their_prompts():
  rewards = np.float32([0.5, np.nan, 1.0, np.inf, -np.inf, 0.0])
  keep, report = nonfinite.apply_policy(rewards, "drop", prompt_ids=["p0", "p1", "p2", "p3", "p4", "p5"])
  np.testing.assert_array_equal(keep, [True, False, True, False, False, True])
  assert report.indices == (1, 3, 4) and report.prompt_ids == ("p1", "p3", "p4") and report.total == 6
  assert np.isnan(report.values[0]) and report.values[1:] == (np.inf, -np.inf)
  assert (
    report.describe(limit=2)
    == "3 of 6 rewards are not finite: prompt p1 (row 1): nan, prompt p3 (row 3): inf, and 1 more"
  )


def test_fail_raises_naming_the_prompt_ids():
  with pytest.raises(
    nonfinite.NonFiniteRewardError, match=r"1 of 3 rewards are not finite: prompt 41 \(row 2\): nan"
  ):
    nonfinite.apply_policy(np.float32([1, 2, np.nan]), "fail", prompt_ids=[17, 29, 41])


def test_all_nonfinite_stops_even_under_drop():
  # Dropping every reward would commit a round that learned nothing, with NaN statistics.
  with pytest.raises(
    nonfinite.NonFiniteRewardError, match=r"every reward is non-finite.*3 of 3 rewards.*prompt a"
  ):
    nonfinite.apply_policy(np.float32([np.nan, np.inf, np.nan]), "drop", prompt_ids=["a", "b", "c"])


def test_finite_rewards_pass_untouched_under_both_policies():
  for policy in nonfinite.POLICIES:
    keep, report = nonfinite.apply_policy(np.float32([0.1, -3.0]), policy)
    assert keep.tolist() == [True, True] and not report and report.total == 2


def test_score_with_policy_runs_a_source_and_the_policy():
  source = task_source.TaskRewardSource(get_task("addition"))
  rewards, keep, report = nonfinite.score_with_policy(
    source, ["What is 1 + 2?", "Add 5 and 5."], ["Reversed sum: 3", "Reversed sum: 01"], "fail"
  )
  assert rewards.tolist() == [1.0, 1.0] and keep.all() and not report


@pytest.mark.parametrize(
  "rewards,kwargs,message",
  [
    (np.zeros((2, 2)), {}, "must be 1-D"),
    (np.zeros(3), {"prompt_ids": [1, 2]}, "2 prompt ids for 3 rewards"),
    (np.zeros(3), {"policy": "zero"}, "unknown non-finite reward policy 'zero'"),
  ],
)
def test_bad_arguments(rewards, kwargs, message):
  with pytest.raises(ValueError, match=message):
    nonfinite.apply_policy(rewards, kwargs.pop("policy", "drop"), **kwargs)
