"""Selection: weighted sampling without replacement matches exact inclusion probabilities; the rest."""

import numpy as np
import pytest

from eva_jax.creator import selection

TRIALS = 20_000


def exact_inclusion(weights, k):
  """P(item i is among k successive weighted draws without replacement), by enumerating every order."""
  weights = np.asarray(weights, np.float64)
  probs = np.zeros(len(weights))

  def draw(chosen, p, left):
    if len(chosen) == k:
      probs[chosen] += p
      return
    for j in range(len(weights)):
      if j not in chosen:
        draw(chosen + [j], p * weights[j] / left, left - weights[j])

  draw([], 1.0, weights.sum())
  return probs


def inclusion_frequency(weights, k, strategy, trials=TRIALS):
  rng = np.random.default_rng(1234)
  counts = np.zeros(len(weights))
  for _ in range(trials):
    picked = selection.select(np.asarray(weights), k, strategy, rng)
    assert len(picked) == k and len(set(picked.tolist())) == k
    counts[picked] += 1
  return counts / trials


def test_importance_weighted_matches_exact_inclusion_probabilities():
  weights = np.array([0.02, 0.08, 0.15, 0.3, 0.45, 0.6])
  k = 3
  exact = exact_inclusion(weights, k)
  assert exact.sum() == pytest.approx(k)
  sigma = np.sqrt(exact * (1 - exact) / TRIALS)
  freq = inclusion_frequency(weights, k, "importance_weighted")
  assert np.all(np.abs(freq - exact) < 4.5 * sigma), (freq, exact)
  # The test can tell: sampling with replacement (k * w / sum w) or ignoring the weights (k / n)
  # would sit many standard errors away from the exact values.
  assert np.max(np.abs(k * weights / weights.sum() - exact) / sigma) > 20
  assert np.max(np.abs(k / len(weights) - exact) / sigma) > 20


def test_zero_weights_come_last_and_uniformly():
  weights = np.array([0.0, 1.0, 0.0, 0.5, 2.0])
  freq = inclusion_frequency(weights, 4, "importance_weighted", trials=4000)
  np.testing.assert_array_equal(freq[[1, 3, 4]], [1.0, 1.0, 1.0])  # every positive weight first
  assert freq[0] + freq[2] == pytest.approx(1.0)
  assert abs(freq[0] - 0.5) < 4.5 * np.sqrt(0.25 / 4000)


def test_uniform_ignores_weights():
  weights = np.array([0.01, 0.01, 5.0, 0.01, 0.01])
  freq = inclusion_frequency(weights, 2, "uniform", trials=5000)
  assert np.all(np.abs(freq - 0.4) < 4.5 * np.sqrt(0.24 / 5000))


@pytest.mark.parametrize("strategy", selection.STRATEGIES)
def test_deterministic_for_a_seed_and_never_picks_unscored(strategy):
  rng = np.random.default_rng(0)
  weights = rng.random(1000)
  weights[::7] = np.nan
  first = selection.select(weights, 100, strategy, np.random.default_rng(5))
  again = selection.select(weights, 100, strategy, np.random.default_rng(5))
  np.testing.assert_array_equal(first, again)
  assert len(set(first.tolist())) == 100
  assert not np.any(first % 7 == 0)
  if strategy != "greedy":
    other = selection.select(weights, 100, strategy, np.random.default_rng(6))
    assert set(other.tolist()) != set(first.tolist())


@pytest.mark.parametrize("strategy", selection.STRATEGIES)
def test_asking_for_more_than_scored_returns_all_scored(strategy):
  weights = np.array([0.5, np.nan, 0.0, 1.0])
  picked = selection.select(weights, 10, strategy, np.random.default_rng(0))
  assert sorted(picked.tolist()) == [0, 2, 3]
  assert selection.select(weights, 0, strategy, np.random.default_rng(0)).tolist() == []
  assert selection.select(np.array([np.nan]), 3, strategy, np.random.default_rng(0)).tolist() == []


def test_greedy_takes_the_top_k_ties_by_index():
  weights = np.array([0.3, 0.9, 0.3, np.nan, 1.0, 0.3])
  assert selection.select(weights, 3, "greedy", np.random.default_rng(0)).tolist() == [4, 1, 0]
  assert selection.select(weights, 4, "greedy", np.random.default_rng(0)).tolist() == [4, 1, 0, 2]


@pytest.mark.parametrize("k", [100, 25, 7])
def test_stratified_draws_evenly_from_every_decile(k):
  rng = np.random.default_rng(3)
  weights = rng.permutation(np.linspace(0, 1, 1000))  # decile d = ranks [100d, 100d + 100)
  picked = selection.select(weights, k, "stratified", np.random.default_rng(k))
  assert len(set(picked.tolist())) == k
  rank = np.argsort(np.argsort(weights))
  per_decile = np.bincount(rank[picked] // 100, minlength=10)
  assert per_decile.sum() == k
  assert set(per_decile.tolist()) <= {k // 10, k // 10 + 1}


@pytest.mark.parametrize("n,k", [(37, 10), (23, 7), (1000, 25), (12, 12)])
def test_stratified_gives_every_prompt_the_same_chance(n, k):
  # With n not a multiple of 10 the strata differ in size; each prompt's inclusion probability must
  # still be exactly k / n (the 9 top-weight prompts of 37 were picked 10% of the time, not 27%).
  weights = np.linspace(0, 1, n)
  draws = 4000
  counts = np.zeros(n)
  rng = np.random.default_rng(0)
  for _ in range(draws):
    picked = selection.select(weights, k, "stratified", rng)
    assert len(set(picked.tolist())) == k
    counts[picked] += 1
  expected = k / n
  sd = np.sqrt(expected * (1 - expected) / draws)
  assert np.abs(counts / draws - expected).max() <= 5 * sd + 1e-12, (counts / draws).round(3)


@pytest.mark.parametrize(
  "num,frac,expected", [(0, 0.25, 0), (10, 0.25, 3), (4, 0.1, 1), (100, 1.0, 100), (8, 0.25, 2), (7, 0.0, 1)]
)
def test_num_selected(num, frac, expected):
  assert selection.num_selected(num, frac) == expected


def test_bad_input():
  with pytest.raises(ValueError, match="unknown selection strategy 'topk'"):
    selection.select(np.ones(3), 1, "topk", np.random.default_rng(0))
  with pytest.raises(ValueError, match="weights must be >= 0"):
    selection.select(np.array([0.5, -0.1]), 1, "greedy", np.random.default_rng(0))
  with pytest.raises(ValueError, match="1-D"):
    selection.select(np.ones((2, 2)), 1, "greedy", np.random.default_rng(0))
