"""The online loop's prompt draws: the weights per `loop.draw`, and DAPO's refill of zero-variance groups."""

import numpy as np
import pytest

from eva_jax.creator import records as records_lib
from eva_jax.loop import online
from eva_jax.loop import responses as responses_lib


def pool(infos):
  """Records whose stored informativeness is `infos` (None: never scored)."""
  records = records_lib.seed_records([f"prompt {i}" for i in range(len(infos))])
  out = []
  for record, info in zip(records, infos):
    if info is None:
      out.append(record)
    else:
      rewards = np.array([[0.0, info]], np.float32)  # gap = info
      out.append(records_lib.with_stats([record], rewards, None, "gap")[0])
  return out


def test_uniform_draws_weigh_every_prompt_the_same():
  np.testing.assert_allclose(online.draw_weights(pool([0.0, 0.5, None, 1.0]), "uniform"), [0.25] * 4)


@pytest.mark.parametrize("draw", ["weighted", "dapo"])
def test_informativeness_draws_put_unscored_prompts_first_and_starve_nobody(draw):
  weights = online.draw_weights(pool([0.0, 0.5, None, 1.0]), draw)
  # min-max normalised gaps 0, 0.5, 1; unscored counts as 1; every weight + 1e-3 so none is zero
  expected = np.array([0.0, 0.5, 1.0, 1.0]) + 1e-3
  np.testing.assert_allclose(weights, expected / expected.sum(), rtol=1e-6)
  assert weights.sum() == pytest.approx(1.0) and weights.min() > 0


def test_draws_leave_out_the_excluded_rows():
  rng = np.random.default_rng(0)
  drawn = online._draw(pool([0.2, 0.4, 0.6, 0.8, 1.0]), 3, "weighted", rng, exclude=np.array([0, 4]))
  assert sorted(drawn.tolist()) == [1, 2, 3]
  assert len(online._draw(pool([0.2, 0.4]), 5, "weighted", rng, exclude=np.array([0]))) == 1


def scored(rewards, tag):
  rewards = np.asarray(rewards, np.float32)
  groups, k = rewards.shape
  return responses_lib.ScoredResponses(
    prompts=[f"{tag}{g}" for g in range(groups)],
    prompt_ids=[[g] for g in range(groups)],
    response_ids=[[[g, j] for j in range(k)] for g in range(groups)],
    texts=[[f"{tag}{g}/{j}" for j in range(k)] for g in range(groups)],
    logprobs=[[[-1.0] for _ in range(k)] for _ in range(groups)],
    rewards=rewards,
    tokens_sampled=groups * k,
  )


def test_dapo_refill_replaces_flat_groups_with_varied_ones_only():
  first = scored([[1, 1], [0, 1], [0, 0]], "a")  # groups 0 and 2 have no spread
  idx, varied = np.array([10, 11, 12]), np.array([False, True, False])
  extra = scored([[1, 1], [0, 1]], "b")  # drawn for slots 0 and 2: the first is flat, the second varied
  before = (first.prompts.copy(), first.rewards.copy())
  out, out_idx, out_varied = online.refilled(first, idx, varied, extra, np.array([0, 2]), np.array([20, 21]))
  assert out.prompts == ["a0", "a1", "b1"] and out.texts[2] == ["b1/0", "b1/1"]
  np.testing.assert_array_equal(out.rewards, [[1, 1], [0, 1], [0, 1]])
  assert out_idx.tolist() == [10, 11, 21] and out_varied.tolist() == [False, True, True]
  # the step's first draw is left as it was: the refill builds new results
  assert (first.prompts, first.rewards.tolist()) == (before[0], before[1].tolist())
  assert idx.tolist() == [10, 11, 12] and varied.tolist() == [False, True, False]
