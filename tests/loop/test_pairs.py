"""Best-vs-worst pairs and the old/new mix."""

import numpy as np
import pytest

from eva_jax.loop import pairs


def test_best_vs_worst_by_hand():
  nan = np.nan
  rewards = np.array(
    [
      [0.1, 0.9, 0.5, 0.9],  # tie for best: lower column wins
      [0.3, 0.3, 0.3, 0.3],  # no spread: no pair
      [nan, 0.2, nan, 0.7],  # dropped responses are ignored
      [nan, nan, 0.4, nan],  # a single valid response: no pair
      [0.0, 0.0, 0.0, 1e-4],
    ]
  )
  p = pairs.best_vs_worst(rewards)
  np.testing.assert_array_equal(p.prompt, [0, 2, 4])
  np.testing.assert_array_equal(p.chosen, [1, 3, 3])
  np.testing.assert_array_equal(p.rejected, [0, 1, 0])
  np.testing.assert_allclose(p.gap, [0.8, 0.5, 1e-4], rtol=1e-5)
  assert len(pairs.best_vs_worst(rewards, min_gap=1e-3)) == 2
  # Only prompts whose best response reaches min_chosen (an exact answer on a graded task) pair up.
  np.testing.assert_array_equal(pairs.best_vs_worst(rewards, min_chosen=0.7).prompt, [0, 2])
  np.testing.assert_array_equal(pairs.best_vs_worst(rewards, min_chosen=0.9).prompt, [0])
  with pytest.raises(ValueError, match="must be \\[prompts, n\\]"):
    pairs.best_vs_worst(np.zeros(4))


def test_mix_takes_the_old_fraction():
  rng = np.random.default_rng(0)
  new, old = pairs.mix(80, 500, 0.2, rng)
  assert sorted(new) == list(range(80)) and len(old) == 20 and len(set(old)) == 20
  new, old = pairs.mix(80, 5, 0.2, rng)
  assert len(old) == 5  # not enough old pairs: all of them
  new, old = pairs.mix(80, 500, 0.0, rng)
  assert len(old) == 0
  with pytest.raises(ValueError, match="old_fraction"):
    pairs.mix(8, 8, 1.0, rng)
