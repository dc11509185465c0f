"""Best-vs-worst pairs and the old/new mix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eva_jax.loop import pairs
from eva_jax.solver import losses


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


def test_rehearsal_rows_are_the_tied_prompts_paired_with_themselves():
  nan = np.nan
  rewards = np.array(
    [
      [1.0, 1.0, 1.0],  # mastered: rehearsed
      [1.0, 0.4, 1.0],  # has a real pair: not rehearsed
      [nan, 1.0, nan],  # one valid response, all tie: rehearsed with it
      [0.2, 0.2, 0.2],  # tied but below min_chosen
      [nan, nan, nan],  # nothing valid
    ]
  )
  r = pairs.rehearsal(rewards, min_chosen=1.0)
  np.testing.assert_array_equal(r.prompt, [0, 2])
  np.testing.assert_array_equal(r.chosen, r.rejected)
  np.testing.assert_array_equal(r.chosen, [0, 1])
  assert (r.gap == 0).all()
  assert len(pairs.rehearsal(rewards)) == 3  # no bound: the 0.2 row too
  both = pairs.concat(pairs.best_vs_worst(rewards), r)
  np.testing.assert_array_equal(both.prompt, [1, 0, 2])


def test_a_rehearsal_row_has_no_preference_gradient():
  # DPO on (y, y): the margin is 0 whatever the params, so only the NLL term can move them.
  def loss(x):
    three, one = jnp.float32(-3.0), jnp.float32(1.0)
    logps = losses.PairLogps(x, x, three, three, one, one)
    return losses.dpo(logps, losses.PreferenceHParams(beta=0.1))[0]

  assert float(jax.grad(loss)(jnp.float32(-2.0))) == 0.0
