"""One offline round per arm on the real stack: how many pairs each arm trains on, and from which prompts.

The round runs for real (tiny model from the shipped base, task reward, task evolver, TFDS pool);
the test records what it scored and what it handed to the DPO epochs, and recomputes the pairs
each arm must train on from the recorded rewards.
"""

import collections
import dataclasses

import jax
import numpy as np
import pytest

from configs import quickstart
from eva_jax import config as config_lib
from eva_jax import tasks
from eva_jax.creator import pool as pool_lib
from eva_jax.creator import records as records_lib
from eva_jax.creator import selection
from eva_jax.creator.evolvers import factory as evolver_factory
from eva_jax.loop import offline
from eva_jax.loop import pairs as pairs_lib
from eva_jax.loop import setup
from eva_jax.loop import training
from eva_jax.rewards import factory as reward_factory

OLD_FRACTION = 0.5


@pytest.fixture(scope="module")
def stack():
  config = quickstart.get_config()
  config.loop.num_samples = 4
  config.loop.max_new_tokens = 12
  config.loop.old_fraction = OLD_FRACTION
  config.loop.max_train_pairs = 0  # no cap: every pair the arm makes is trained on
  config.creator.num_evolutions = 2
  config.creator.sample_frac = 0.5
  config.solver.epochs = 1
  cfg = config_lib.parse(config, jax.device_count())
  solver = setup.build(cfg)
  rewards = reward_factory.make_reward_source(cfg.reward, mesh=solver.mesh, rules=cfg.mesh.rules)
  # Generation 0 spans the held-out buckets: mastered sums (no spread), the frontier (a spread) and
  # sums out of reach, so every kind of prompt is in the pool.
  seeds = records_lib.seed_records(tasks.get_task(cfg.creator.task).eval_prompts(4))
  yield cfg, solver, rewards, seeds
  rewards.close()


def context(cfg, solver, rewards, pool) -> offline.RoundContext:
  return offline.RoundContext(
    cfg=cfg,
    model=solver.model,
    tokenizer=solver.tokenizer,
    mesh=solver.mesh,
    param_shardings=solver.shardings,
    reward_source=rewards,
    evolver=evolver_factory.build_evolver(cfg.creator),
    pool=pool,
    on_metrics=lambda i, m: None,
  )


def run_arm(stack, tmp_path, monkeypatch, prompts: str, rehearse: bool = False):
  """Runs round 1 of arm `prompts`; returns (stats, [old, new] ScoredResponses, trained triples, pool)."""
  cfg, solver, rewards, seeds = stack
  cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, prompts=prompts, rehearse=rehearse))
  pool = pool_lib.Pool(tmp_path / "pool")
  pool.write_generation(0, seeds)
  scored, trained = [], []
  real_score, real_epochs = offline._score, training.preference_epochs

  def score(*args, **kwargs):
    scored.append(real_score(*args, **kwargs))
    return scored[-1]

  def epochs(model, params, prompt_ids, chosen_ids, rejected_ids, **kwargs):
    trained.extend(zip(map(tuple, prompt_ids), map(tuple, chosen_ids), map(tuple, rejected_ids)))
    return real_epochs(model, params, prompt_ids, chosen_ids, rejected_ids, **kwargs)

  monkeypatch.setattr(offline, "_score", score)
  monkeypatch.setattr(training, "preference_epochs", epochs)
  ctx = context(cfg, solver, rewards, pool)
  _, generation, stats = offline.run_round(ctx, solver.params, 1, 0)
  return stats, scored, trained, pool, generation


def triples(scored, pairs):
  return [
    (tuple(scored.prompt_ids[p]), tuple(scored.response_ids[p][c]), tuple(scored.response_ids[p][r]))
    for p, c, r in zip(pairs.prompt, pairs.chosen, pairs.rejected)
  ]


def old_pairs(cfg, old, rehearse=False):
  found = pairs_lib.best_vs_worst(old.rewards, cfg.loop.min_gap, cfg.loop.min_chosen_reward)
  if rehearse:
    found = pairs_lib.concat(found, pairs_lib.rehearsal(old.rewards, cfg.loop.min_chosen_reward))
  return found


def test_static_trains_on_every_old_pair_and_nothing_else(stack, tmp_path, monkeypatch):
  cfg = stack[0]
  stats, scored, trained, pool, generation = run_arm(stack, tmp_path, monkeypatch, "static")
  (old,) = scored  # no new prompts are sampled
  expected = triples(old, old_pairs(cfg, old))
  assert 0 < len(expected) < len(old.prompts)  # some prompts have a spread, some do not
  assert collections.Counter(trained) == collections.Counter(expected)
  assert stats["round/train_pairs"] == stats["round/old_pairs"] == len(expected)
  assert generation == 0 and pool.generations() == [0]


def test_rehearsal_adds_one_row_per_prompt_without_a_spread(stack, tmp_path, monkeypatch):
  cfg = stack[0]
  stats, (old,), trained, _, _ = run_arm(stack, tmp_path, monkeypatch, "static", rehearse=True)
  rehearsed = pairs_lib.rehearsal(old.rewards, cfg.loop.min_chosen_reward)
  assert stats["round/rehearsal_pairs"] == len(rehearsed) > 0
  assert collections.Counter(trained) == collections.Counter(triples(old, old_pairs(cfg, old, True)))
  assert all(chosen == rejected for _, chosen, rejected in triples(old, rehearsed))


def test_subset_trains_only_on_the_prompts_the_creator_would_evolve(stack, tmp_path, monkeypatch):
  cfg = stack[0]
  stats, (old,), trained, pool, _ = run_arm(stack, tmp_path, monkeypatch, "subset")
  scored_prompts = int(np.isfinite(old.rewards).any(axis=1).sum())
  assert stats["round/subset_prompts"] == selection.num_selected(scored_prompts, cfg.creator.sample_frac)
  all_old = triples(old, old_pairs(cfg, old))
  assert set(trained) <= set(all_old) and len(trained) == stats["round/train_pairs"]
  assert len({prompt for prompt, _, _ in trained}) <= stats["round/subset_prompts"]
  assert pool.generations() == [0]


@pytest.mark.parametrize("arm", ["evolve", "fresh"])
def test_new_prompts_give_every_new_pair_and_old_pairs_make_up_old_fraction(
  arm, stack, tmp_path, monkeypatch
):
  cfg = stack[0]
  stats, scored, trained, pool, generation = run_arm(stack, tmp_path, monkeypatch, arm)
  old, new = scored
  assert generation == 1 and pool.generations() == [0, 1]
  children = [r for r in pool.read_generation(1) if r.generation == 1]
  assert new.prompts == [r.text for r in children]  # the round sampled exactly the new generation
  if arm == "fresh":
    assert {(r.method, r.source) for r in children} == {("fresh", "seed")}
  else:
    assert {r.source for r in children} == {"evolved"}
  new_triples = triples(
    new, pairs_lib.best_vs_worst(new.rewards, cfg.loop.min_gap, cfg.loop.min_chosen_reward)
  )
  old_triples = triples(old, old_pairs(cfg, old))
  trained_new = [t for t in trained if t in set(new_triples)]
  trained_old = [t for t in trained if t in set(old_triples)]
  assert collections.Counter(trained_new) == collections.Counter(new_triples)  # every new pair, once
  assert len(trained_new) + len(trained_old) == len(trained) == stats["round/train_pairs"]
  wanted_old = int(round(len(new_triples) * OLD_FRACTION / (1 - OLD_FRACTION)))
  assert len(trained_old) == min(wanted_old, len(old_triples))
  assert stats["round/new_pairs"] == len(new_triples) and stats["round/old_pairs"] == len(old_triples)


def test_a_redone_round_reads_its_committed_generation_back(stack, tmp_path, monkeypatch):
  first, scored, trained, pool, _ = run_arm(stack, tmp_path, monkeypatch, "evolve")
  children = [r for r in pool.read_generation(1) if r.generation == 1]
  monkeypatch.undo()
  cfg, solver, rewards, seeds = stack
  ctx = context(cfg, solver, rewards, pool)
  _, generation, again = offline.run_round(ctx, solver.params, 1, 0)
  assert generation == 1 and pool.generations() == [0, 1]
  assert again["creator/reused"] == 1.0 and "creator/reused" not in first
  assert [r.text for r in pool.read_generation(1) if r.generation == 1] == [r.text for r in children]
  assert again["round/new_pairs"] == first["round/new_pairs"]
