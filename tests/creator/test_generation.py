"""One creator step end to end (score, select, evolve, filter, pool write/read) and lineage queries."""

import collections
import dataclasses
import json
import logging

import numpy as np
import pytest

from eva_jax import tasks
from eva_jax.creator import config as creator_config
from eva_jax.creator import generation
from eva_jax.creator import informativeness
from eva_jax.creator import lineage as lineage_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.creator import records as records_lib
from eva_jax.creator import seeds
from eva_jax.creator.evolvers import factory
from eva_jax.models import chat_template

ADDITION = tasks.get_task("addition")
N = 20


def _config(**overrides):
  settings = dict(
    evolver="task",
    selection="greedy",
    methods=(("resample", 1.0),),
    num_evolutions=2,
    filters=creator_config.FilterConfig(min_tokens=1, max_tokens=64),
  )
  return creator_config.CreatorConfig(**(settings | overrides))


def _rewards():
  """Prompt i has gap i / N (one reward of i / N, five of 0); the last prompt has no valid reward."""
  rewards = np.zeros((N, 6))
  rewards[:, 0] = np.arange(N) / N
  rewards[-1] = np.nan
  return rewards


def _step(records, rewards, tokenizer, config=None, seed=0, **kwargs):
  config = config or _config()
  return generation.next_generation(
    records,
    rewards,
    None,
    config=config,
    evolver=factory.build_evolver(config),
    generation=1,
    rng=np.random.default_rng(seed),
    count_tokens=lambda t: len(tokenizer.encode(t)),
    **kwargs,
  )


def test_next_generation(tokenizer):
  seeds = records_lib.seed_records(ADDITION.seed_prompts(N, 0))
  out = _step(seeds, _rewards(), tokenizer)
  # sample_frac 0.25 of the 19 scored prompts -> 5; greedy takes the largest gaps.
  assert out.selected == [f"g0-{i}" for i in (18, 17, 16, 15, 14)]
  stats = informativeness.reward_stats(_rewards())
  old = out.records[:N]
  assert [r.prompt_id for r in old] == [s.prompt_id for s in seeds]
  np.testing.assert_array_equal([r.n for r in old], stats["n"])
  np.testing.assert_allclose([r.mean for r in old], stats["mean"])
  np.testing.assert_allclose([r.info for r in old], informativeness.score(_rewards(), None, "gap"))
  assert out.records[N:] == out.children
  assert {c.root_id for c in out.children} <= set(out.selected)
  assert all(
    ADDITION.difficulty(c.text) == ADDITION.difficulty(seeds[int(c.root_id[3:])].text) for c in out.children
  )
  s = out.stats
  assert s["creator/selected"] == 5 and s["creator/requests"] == 10 and s["creator/scored"] == 19
  dropped = sum(v for k, v in s.items() if k.startswith(("creator/drop/", "creator/filter/")))
  assert s["creator/children"] == len(out.children) == 10 - dropped
  assert s["creator/pool_size"] == N + len(out.children) and s["creator/capped"] == 0
  assert s["creator/info_selected_mean"] == np.mean([i / N for i in (18, 17, 16, 15, 14)])
  again = _step(seeds, _rewards(), tokenizer)
  assert again.records == out.records  # deterministic for a seed


def test_prompts_without_new_rewards_keep_their_stats(tokenizer):
  first = _step(records_lib.seed_records(ADDITION.seed_prompts(N, 0)), _rewards(), tokenizer)
  rewards = np.full((len(first.records), 6), np.nan)
  rewards[0] = [1, 1, 1, 0, 0, 0]
  second = _step(first.records, rewards, tokenizer, seed=1)
  assert second.records[0].n == 6 and second.records[0].mean == 0.5 and second.records[0].info == 1.0
  assert second.records[1:N] == first.records[1:N]
  assert second.records[18].info == 18 / N  # its score from the first round
  # Children of the first round were never scored: not eligible, never dropped by the cap.
  assert not set(second.selected) & {c.prompt_id for c in first.children}


def test_max_size_drops_the_least_informative_old_prompts(tokenizer):
  seeds = records_lib.seed_records(ADDITION.seed_prompts(N, 0))
  out = _step(seeds, _rewards(), tokenizer, max_size=N)
  kept = {r.prompt_id for r in out.records}
  children = len(out.children)
  assert len(out.records) == N and out.stats["creator/capped"] == children
  assert kept >= {c.prompt_id for c in out.children} | {"g0-19"}  # unscored g0-19 is kept too
  assert kept.isdisjoint({f"g0-{i}" for i in range(children)})  # lowest gaps: 0, 1/N, ...


def test_importance_weighted_fills_past_the_positive_weights(tokenizer):
  seeds = records_lib.seed_records(ADDITION.seed_prompts(N, 0))
  rewards = np.zeros((N, 6))
  rewards[[3, 7], 0] = [1.0, 0.5]  # only two prompts have any spread; gap-normalised weights 1 and 0.5
  out = _step(seeds, rewards, tokenizer, _config(selection="importance_weighted"))
  assert len(out.selected) == 5 and {"g0-3", "g0-7"} <= set(out.selected)


def test_initial_generation_from_jsonl(tmp_path, tokenizer):
  path = tmp_path / "seeds.jsonl"
  lines = [json.dumps({"prompt": p}) for p in ["Add 1 and 2.", "add 1 and  2.", "", "Add 3 and 4."]]
  path.write_text("\n".join(lines + ["oops"]) + "\n")
  pool_config = creator_config.PoolConfig(seed_source="jsonl", seed_path=str(path), num_seeds=0)
  out = generation.initial_generation(
    pool_config, _config(), seed=0, count_tokens=lambda t: len(tokenizer.encode(t))
  )
  assert [(r.prompt_id, r.text) for r in out.records] == [("g0-0", "Add 1 and 2."), ("g0-1", "Add 3 and 4.")]
  assert out.stats["creator/seeds_malformed"] == 2  # the empty prompt and "oops"
  assert out.stats["creator/filter/near_duplicate"] == 1


def test_seeds_the_filters_drop_are_listed_by_file_and_line(tmp_path, tokenizer, caplog):
  path = tmp_path / "seeds.jsonl"
  texts = [
    "Add 1 and 2.",
    "Add 1 and 2.",
    "Add\x1b 5 and 6.",
    "Add 7\ufffd and 8.",
    "ADD 1 AND 2.",
    "Add 3 and 4.",
  ]
  path.write_text("\n".join(json.dumps({"prompt": t}) for t in texts) + "\n")
  pool_config = creator_config.PoolConfig(seed_source="jsonl", seed_path=str(path), num_seeds=0)
  with caplog.at_level(logging.WARNING):
    out = generation.initial_generation(
      pool_config, _config(), seed=0, count_tokens=lambda t: len(tokenizer.encode(t))
    )
  assert [r.text for r in out.records] == [texts[0], texts[5]]
  expected = (
    f"{path}: 4 filtered line(s): line 2: duplicate 'Add 1 and 2.'; line 3: bad_chars 'Add\\x1b 5 and 6.'; "
    "line 4: bad_chars 'Add 7\ufffd and 8.'; line 5: near_duplicate 'ADD 1 AND 2.'; skipped"
  )
  assert expected in caplog.text


def test_initial_generation_refuses_seeds_the_sampler_cannot_take(tmp_path, tokenizer):
  """Checked against the sampler's room whatever the filters' own token bounds say."""
  path = tmp_path / "seeds.jsonl"
  texts = ["Add 1 and 2.", "Add " + " and ".join(["12"] * 60) + ".", "Add 3 and 4."]
  path.write_text("\n".join(json.dumps({"prompt": t}) for t in texts) + "\n")
  count = lambda t: len(tokenizer.encode(chat_template.format_prompt(t), add_bos=True))  # noqa: E731
  limit = seeds.PromptLimit(
    count=count, max_tokens=64, what="config.loop.max_cache_length - config.loop.max_new_tokens"
  )
  pool_config = creator_config.PoolConfig(seed_source="jsonl", seed_path=str(path), num_seeds=0)
  tokens = lambda t: len(tokenizer.encode(t))  # noqa: E731
  out = generation.initial_generation(pool_config, _config(), seed=0, count_tokens=tokens, sample_limit=limit)
  assert [r.text for r in out.records] == [texts[0], texts[2]]
  assert out.stats["creator/seeds_too_long"] == 1 and out.stats["creator/seeds_malformed"] == 0
  strict = dataclasses.replace(pool_config, on_malformed="fail")
  with pytest.raises(
    ValueError,
    match=r"seeds.jsonl: 1 too long line\(s\): line 2: \d+ tokens with the chat template; config.loop.max_cache_length - config.loop.max_new_tokens leaves 64",
  ):
    generation.initial_generation(strict, _config(), seed=0, count_tokens=tokens, sample_limit=limit)


def test_rounds_through_the_pool_and_lineage(tmp_path, tokenizer):
  """The loop's calls: seeds -> pool; rewards -> next generation -> pool; lineage for the notebook."""
  pool = pool_lib.Pool(tmp_path / "pool")
  config = _config(methods=(("add_digit", 1.0),), num_evolutions=2, sample_frac=0.5)
  count = lambda t: len(tokenizer.encode(t))  # noqa: E731
  seeds = generation.initial_generation(
    creator_config.PoolConfig(num_seeds=8), config, seed=0, count_tokens=count
  )
  pool.write_generation(0, seeds.records)
  records = pool.read_generation()
  for gen in (1, 2):
    rng = np.random.default_rng(gen)
    rewards = rng.random((len(records), 6))
    step = generation.next_generation(
      records,
      rewards,
      None,
      config=config,
      evolver=factory.build_evolver(config),
      generation=gen,
      rng=rng,
      count_tokens=count,
    )
    pool.write_generation(gen, step.records)
    records = pool.read_generation(gen)
    assert [r.prompt_id for r in records] == [r.prompt_id for r in step.records]
    assert [r.text for r in records] == [r.text for r in step.records]
  lineage = lineage_lib.Lineage.from_pool(pool)
  grandchild = next(r for r in records if r.generation == 2 and lineage[r.parent_id].generation == 2)
  chain = lineage.ancestors(grandchild.prompt_id)
  assert [r.generation for r in chain][-1] == 0 and chain[-1].prompt_id == grandchild.root_id
  assert chain[0].prompt_id == grandchild.parent_id and lineage.depth(grandchild.prompt_id) == len(chain)
  digits = lambda r: sum(int(d) for d in ADDITION.difficulty(r.text).split("+"))  # noqa: E731
  assert [digits(r) for r in [grandchild, *chain]] == sorted(
    (digits(r) for r in [grandchild, *chain]), reverse=True
  )
  assert grandchild.prompt_id in [r.prompt_id for r in lineage.children(grandchild.parent_id)]
  summary = lineage.summary()
  assert [row["generation"] for row in summary] == [0, 1, 2]
  assert summary[0] == {
    "generation": 0,
    "prompts": 8,
    "new": 8,
    "seeds": 8,
    "evolved": 0,
    "scored": 0,
    "reward_mean": summary[0]["reward_mean"],
    "info_mean": summary[0]["info_mean"],
    "depth_mean": 0.0,
    "new_by_method": {"seed": 8},
  }
  assert np.isnan(summary[0]["reward_mean"])
  for row, gen in zip(summary[1:], (1, 2)):
    new = [r for r in pool.read_generation(gen) if r.generation == gen]
    assert row["new"] == len(new) > 0 and row["new_by_method"] == {"add_digit": len(new)}
    assert row["prompts"] == pool.manifest(gen)["num_prompts"] and row["seeds"] == 8
    assert row["scored"] == row["prompts"] - row["new"]
  assert collections.Counter(r.generation for r in records) == {
    0: 8,
    1: summary[1]["new"],
    2: summary[2]["new"],
  }


def test_max_size_also_bounds_the_children(tokenizer):
  seeds = records_lib.seed_records(ADDITION.seed_prompts(N, 0))
  config = _config(sample_frac=1.0, num_evolutions=4)
  full = _step(seeds, _rewards(), tokenizer, config)
  assert len(full.children) > N  # without the cap the pool would grow several-fold
  out = _step(seeds, _rewards(), tokenizer, config, max_size=N)
  # All room went to children, but for g0-19: not scored yet, so never dropped.
  assert len(out.records) == N and [r.prompt_id for r in out.records[:1]] == ["g0-19"]
  assert out.records[1:] == out.children
  assert out.stats["creator/capped_children"] == len(full.children) - (N - 1)
  assert out.stats["creator/capped"] == N - 1 and out.stats["creator/pool_size"] == N
  order = [c.prompt_id for c in full.children]  # the same evolution: the cap draws after it
  positions = [order.index(c.prompt_id) for c in out.children]
  assert positions == sorted(positions)  # a subset, in evolution order
