"""Every informativeness metric against hand-computed values, on a ragged reward matrix."""

import numpy as np
import pytest

from eva_jax.creator import informativeness

NAN = np.nan
# Row 0: the last reward is masked out -> valid {1, 0, 0.5}. Row 1: all equal. Row 2: two dropped
# (NaN) -> {0.9, 0.1}. Row 3: nothing valid. Row 4: a single valid reward.
REWARDS = np.array(
  [
    [1.0, 0.0, 0.5, 7.0],
    [0.2, 0.2, 0.2, 0.2],
    [NAN, 0.9, 0.1, NAN],
    [NAN, NAN, NAN, NAN],
    [0.3, NAN, NAN, NAN],
  ]
)
MASK = np.ones(REWARDS.shape, bool)
MASK[0, 3] = False

EXPECTED = {
  "gap": [1.0, 0.0, 0.8, NAN, 0.0],
  "maxmean": [0.5, 0.0, 0.4, NAN, 0.0],
  "var": [1 / 6, 0.0, 0.16, NAN, 0.0],
  "mean": [0.5, 0.2, 0.5, NAN, 0.3],
  "mean_inv": [-0.5, -0.2, -0.5, NAN, -0.3],
  "gap_inv": [-1.0, 0.0, -0.8, NAN, 0.0],
  "dts": [0.5, 0.0, 0.8, NAN, 0.0],
  "uniform": [1.0, 1.0, 1.0, NAN, 1.0],
}


def test_every_metric_is_tested():
  assert set(EXPECTED) == set(informativeness.METRICS)


@pytest.mark.parametrize("metric", informativeness.METRICS)
def test_metric_matches_hand_computed_values(metric):
  scores = informativeness.score(REWARDS, MASK, metric)
  assert scores.shape == (5,) and scores.dtype == np.float64
  np.testing.assert_allclose(scores, EXPECTED[metric], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("metric", informativeness.METRICS)
def test_mask_and_nan_mean_the_same(metric):
  dropped = REWARDS.copy()
  dropped[~MASK] = NAN
  filled = np.where(np.isnan(REWARDS), -5.0, REWARDS)  # garbage where invalid; the mask hides it
  valid = MASK & ~np.isnan(REWARDS)
  np.testing.assert_array_equal(
    informativeness.score(dropped, None, metric), informativeness.score(filled, valid, metric)
  )


@pytest.mark.parametrize("metric", informativeness.METRICS)
def test_column_order_does_not_matter(metric):
  rng = np.random.default_rng(0)
  rewards = rng.random((50, 6))
  rewards[rng.random(rewards.shape) < 0.2] = NAN
  perm = rng.permutation(6)
  np.testing.assert_allclose(
    informativeness.score(rewards, None, metric), informativeness.score(rewards[:, perm], None, metric)
  )


@pytest.mark.parametrize("metric", informativeness.METRICS)
def test_a_score_does_not_depend_on_the_batch_it_was_scored_with(metric):
  """The online loop scores batches apart and stores the scores; weights come from the whole pool."""
  rng = np.random.default_rng(1)
  rewards = rng.random((40, 4))
  apart = np.concatenate(
    [informativeness.score(rewards[:8], None, metric), informativeness.score(rewards[8:], None, metric)]
  )
  np.testing.assert_allclose(apart, informativeness.score(rewards, None, metric), rtol=1e-12)


def test_inverted_metrics_weigh_as_one_minus_minmax_over_the_pool():
  means = np.array([0.5, 0.2, 0.5, 0.3])  # the scored rows of REWARDS
  weights = informativeness.normalise(informativeness.score(REWARDS, MASK, "mean_inv"))
  np.testing.assert_allclose(weights, [0.0, 1.0, 0.0, NAN, 2 / 3], atol=1e-12)
  assert np.allclose(1 - (means - means.min()) / np.ptp(means), weights[[0, 1, 2, 4]])
  gaps = informativeness.normalise(informativeness.score(REWARDS, MASK, "gap_inv"))
  np.testing.assert_allclose(gaps, [0.0, 1.0, 0.2, NAN, 1.0], atol=1e-12)


def test_dts_uses_the_two_best_rewards():
  rewards = np.array([[0.2, 0.9, NAN], [0.1, 0.7, 0.6], [0.4, 0.4, 0.4]])
  np.testing.assert_allclose(informativeness.score(rewards, None, "dts"), [0.7, 0.1, 0.0])  # not 0.7 - 0.1


def test_reward_stats():
  stats = informativeness.reward_stats(REWARDS, MASK)
  np.testing.assert_array_equal(stats["n"], [3, 4, 2, 0, 1])
  np.testing.assert_allclose(stats["mean"], [0.5, 0.2, 0.5, NAN, 0.3])
  np.testing.assert_allclose(stats["max"], [1.0, 0.2, 0.9, NAN, 0.3])
  np.testing.assert_allclose(stats["min"], [0.0, 0.2, 0.1, NAN, 0.3])
  np.testing.assert_allclose(stats["std"], [np.sqrt(1 / 6), 0.0, 0.4, NAN, 0.0], atol=1e-12)


@pytest.mark.parametrize(
  "scores,expected",
  [
    ([2.0, 4.0, NAN, 3.0], [0.0, 1.0, NAN, 0.5]),
    ([5.0, 5.0, NAN], [1.0, 1.0, NAN]),  # all equal: uniform weights, not NaN
    ([0.3], [1.0]),
    ([NAN, NAN], [NAN, NAN]),
    ([-1.0, 1.0, 0.0], [0.0, 1.0, 0.5]),
  ],
)
def test_normalise(scores, expected):
  np.testing.assert_allclose(informativeness.normalise(np.array(scores)), expected)


def test_bad_input():
  with pytest.raises(ValueError, match="unknown informativeness metric 'loo'"):
    informativeness.score(REWARDS, MASK, "loo")
  with pytest.raises(ValueError, match=r"rewards must be \[num_prompts, n\]"):
    informativeness.score(np.zeros(3), None, "gap")
  with pytest.raises(ValueError, match="mask shape"):
    informativeness.score(REWARDS, MASK[:, :2], "gap")
