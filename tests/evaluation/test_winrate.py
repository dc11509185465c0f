"""Win rates and bootstrap intervals: hand-computed cases and coverage on synthetic data."""

import numpy as np
import pytest

from eva_jax.evaluation import winrate


def test_hand_computed_wins_ties_losses():
  result = winrate.win_rate([1.0, 0.5, 0.25, 0.75], [0.5, 0.5, 0.75, 0.75], num_resamples=200)
  assert (result.wins, result.ties, result.losses) == (1, 2, 1)
  assert result.win_rate.value == 0.5  # (1 + 2 * 0.5) / 4
  assert result.reward_diff.value == pytest.approx((0.5 + 0 - 0.5 + 0) / 4)
  assert result.win_rate.low <= 0.5 <= result.win_rate.high
  assert result.win_rate.num_prompts == 4


def test_all_wins_and_all_losses_have_degenerate_intervals():
  wins = winrate.win_rate([2.0, 3.0, 4.0], [1.0, 1.0, 1.0])
  assert (wins.win_rate.value, wins.win_rate.low, wins.win_rate.high) == (1.0, 1.0, 1.0)
  assert wins.wins == 3 and wins.reward_diff.value == 2.0
  losses = winrate.win_rate([0.0, 0.0], [1.0, 0.5])
  assert (losses.win_rate.value, losses.win_rate.low, losses.win_rate.high) == (0.0, 0.0, 0.0)
  assert losses.losses == 2 and losses.reward_diff.value == -0.75


def test_tie_tolerance_turns_small_differences_into_half_wins():
  policy, reference = [0.5625, 0.25, 0.875], [0.5, 0.5, 0.5]
  assert winrate.outcomes(policy, reference).tolist() == [1.0, 0.0, 1.0]
  assert winrate.outcomes(policy, reference, tie_tolerance=0.125).tolist() == [0.5, 0.0, 1.0]
  assert winrate.win_rate(policy, reference, tie_tolerance=0.125).win_rate.value == 0.5
  assert winrate.outcomes(policy, reference, tie_tolerance=0.5).tolist() == [0.5, 0.5, 0.5]
  with pytest.raises(ValueError, match="tie_tolerance"):
    winrate.outcomes(policy, reference, tie_tolerance=-1.0)


def test_non_finite_rewards_drop_their_pairs():
  result = winrate.win_rate([1.0, np.nan, 0.0, 2.0], [0.0, 1.0, np.inf, 2.0])
  assert (result.wins, result.ties, result.losses) == (1, 1, 0)
  assert result.win_rate.value == 0.75 and result.win_rate.num_prompts == 2
  assert result.reward_diff.value == 0.5
  with pytest.raises(ValueError, match="no finite"):
    winrate.win_rate([np.nan], [1.0])


def test_samples_of_a_prompt_are_paired_and_pooled():
  policy = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, np.nan]])
  reference = np.zeros((3, 2))
  result = winrate.win_rate(policy, reference)
  # Outcomes [[1, .5], [1, 1], [.5, -]]: 5 pairs, 3 wins and 2 ties.
  assert (result.wins, result.ties, result.losses) == (3, 2, 0)
  assert result.win_rate.value == pytest.approx(4 / 5)
  assert result.win_rate.num_prompts == 3
  with pytest.raises(ValueError, match="shape"):
    winrate.win_rate(policy, reference[:2])


def test_bootstrap_is_deterministic_for_a_seed_and_independent_of_chunking(monkeypatch):
  values = np.random.default_rng(1).normal(size=(300, 2))
  a = winrate.bootstrap_mean(values, num_resamples=500, seed=3)
  assert a == winrate.bootstrap_mean(values, num_resamples=500, seed=3)
  assert a != winrate.bootstrap_mean(values, num_resamples=500, seed=4)
  monkeypatch.setattr(winrate, "_CHUNK_ELEMENTS", 1000)  # 3 resamples per chunk
  assert a == winrate.bootstrap_mean(values, num_resamples=500, seed=3)
  assert a.low < a.value < a.high
  # The 95% interval of a mean of 600 unit normals spans about 2 * 1.96 / sqrt(600) = 0.16.
  assert a.high - a.low == pytest.approx(0.16, rel=0.2)
  point = winrate.bootstrap_mean(values, num_resamples=0)
  assert point.low == point.value == point.high == pytest.approx(values.mean())


def _coverage(truth: float, datasets, confidence: float) -> float:
  hits = []
  for seed, data in enumerate(datasets):
    estimate = winrate.bootstrap_mean(data, num_resamples=400, seed=seed, confidence=confidence)
    hits.append(estimate.low <= truth <= estimate.high)
  return float(np.mean(hits))


def _synthetic_outcomes(rng, num_prompts=200):
  """Win w.p. 0.45, tie w.p. 0.2, loss w.p. 0.35: true win rate 0.45 + 0.2 / 2 = 0.55."""
  return rng.choice([1.0, 0.5, 0.0], p=[0.45, 0.2, 0.35], size=num_prompts)


def test_win_rate_interval_covers_the_true_win_rate_at_its_level():
  rng = np.random.default_rng(0)
  datasets = [_synthetic_outcomes(rng) for _ in range(300)]
  # 300 trials: the coverage has a standard error of about 0.013 around the nominal level.
  assert 0.91 <= _coverage(0.55, datasets, 0.95) <= 0.98
  assert 0.42 <= _coverage(0.55, datasets, 0.5) <= 0.58


def test_resampling_prompts_covers_correlated_samples_where_resampling_pairs_would_not():
  """8 samples per prompt share the prompt's win probability (~ Beta(1, 1)): true win rate 0.5."""
  rng = np.random.default_rng(1)
  datasets = []
  for _ in range(300):
    p = rng.beta(1.0, 1.0, size=(100, 1))
    datasets.append((rng.random((100, 8)) < p).astype(float))
  assert 0.91 <= _coverage(0.5, datasets, 0.95) <= 0.98
  # Treating the 800 pairs as independent ignores the shared prompt effect (design effect 1 + 7 / 3):
  # its interval is too narrow by sqrt(10 / 3), so it covers about 72% of the time.
  assert _coverage(0.5, [d.reshape(-1) for d in datasets], 0.95) < 0.8


def test_reward_difference_interval_covers_the_true_mean():
  rng = np.random.default_rng(2)
  pairs = [(rng.normal(0.3, 1.0, 150), rng.normal(0.0, 1.0, 150)) for _ in range(200)]
  hits = []
  for seed, (policy, reference) in enumerate(pairs):
    diff = winrate.win_rate(policy, reference, num_resamples=400, seed=seed).reward_diff
    hits.append(diff.low <= 0.3 <= diff.high)
  assert 0.90 <= np.mean(hits) <= 0.99
