"""eva_jax.analysis.curriculum against a real tiny run: every table agrees with the pool and summary.json."""

import collections
import json
import math

import numpy as np
import pytest

from eva_jax import tasks
from eva_jax.analysis import curriculum
from eva_jax.creator import lineage as lineage_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.loop import metrics as metrics_lib


@pytest.fixture(scope="module")
def run(run_dir):
  return curriculum.Run(run_dir)


@pytest.fixture(scope="module")
def pool(run_dir):
  return pool_lib.Pool(run_dir / "pool")


@pytest.fixture(scope="module")
def rounds(run_dir):
  return json.loads((run_dir / "summary.json").read_text())["rounds"]


def _same(a, b):
  return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


def test_pool_sizes_match_the_pool(run, pool):
  rows = run.pool_sizes()
  assert [r["generation"] for r in rows] == pool.generations() == [0, 1, 2]
  for row in rows:
    records = pool.read_generation(row["generation"])
    assert row["prompts"] == len(records) == row["seeds"] + row["evolved"]
    assert row["new"] == sum(r.generation == row["generation"] for r in records)
    assert row["scored"] == sum(r.n > 0 for r in records)
  assert rows[0]["prompts"] == 16 and rows[2]["prompts"] > rows[1]["prompts"] > 16


def test_informativeness_per_generation(run, pool):
  for row in run.informativeness():
    info = np.array([r.info for r in pool.read_generation(row["generation"])])
    finite = info[np.isfinite(info)]
    np.testing.assert_allclose(np.sort(row["values"]), np.sort(finite))
    assert row["scored"] + row["unscored"] == len(info)
    assert _same(row["mean"], float(finite.mean()) if finite.size else math.nan)
  # Generation 1: the seeds scored in round 1, and its new prompts scored by the same round right
  # after they were made (kept beside the generation): every prompt has a score.
  gen1 = run.informativeness()[1]
  assert gen1["scored"] == len(pool.read_generation(1)) > 16 and gen1["unscored"] == 0


def test_rewards_by_generation_split_seeds_and_evolved(run, pool):
  for row in run.rewards_by_generation():
    records = pool.read_generation(row["generation"])
    for source in ("seed", "evolved"):
      scored = [r.mean for r in records if r.source == source and r.n > 0]
      assert row[f"{source}_scored"] == len(scored)
      assert _same(row[f"{source}_reward"], float(np.mean(scored)) if scored else math.nan)


def test_method_counts_add_up_to_the_children(run, pool, rounds):
  rows = run.method_mix()
  assert [r["generation"] for r in rows] == [1, 2]
  for row in rows:
    g = row["generation"]
    made = collections.Counter(r.method for r in pool.read_generation(g) if r.generation == g)
    assert sum(row["counts"].values()) == row["children"] == sum(made.values()) > 0
    assert {m: c for m, c in row["counts"].items() if c} == dict(made)
    stats = next(r["stats"] for r in rounds if r["generation"] == g)
    assert row["children"] == stats["creator/children"]
    assert dict(made) == {k.removeprefix("creator/method/"): v for k, v in stats.items() if "/method/" in k}
  assert len({tuple(r["counts"]) for r in rows}) == 1  # the same methods in every row


def test_lineage_trees_hold_exactly_the_seeds_descendants(run, pool):
  lineage = lineage_lib.Lineage.from_pool(pool)
  trees = run.lineage_trees(count=3)
  assert len(trees) == 3
  descendants = collections.Counter(r.root_id for r in lineage.by_id.values() if r.parent_id)
  assert len(trees[0]["nodes"]) == max(descendants.values())
  for tree in trees:
    seed = lineage[tree["seed"]]
    assert seed.source == "seed" and tree["text"] == seed.text
    ids = [n["prompt_id"] for n in tree["nodes"]]
    assert len(ids) == len(set(ids)) == descendants[tree["seed"]]
    seen = {tree["seed"]}
    for node in tree["nodes"]:
      assert lineage[node["prompt_id"]].root_id == tree["seed"]
      assert node["parent_id"] in seen  # breadth-first: parents come first
      assert node["depth"] == lineage.depth(node["prompt_id"]) >= 1
      seen.add(node["prompt_id"])
  assert run.lineage_trees(seeds=["g0-0"])[0]["seed"] == "g0-0"


def test_extremes_are_the_most_and_least_informative(run, pool):
  lineage = lineage_lib.Lineage.from_pool(pool)
  info = sorted(r.info for r in lineage.by_id.values() if math.isfinite(r.info))
  extremes = run.extremes(count=4)
  most, least = [r["info"] for r in extremes["most"]], [r["info"] for r in extremes["least"]]
  assert most == sorted(most, reverse=True) and most == info[::-1][:4]
  assert least == sorted(least) and least == info[:4]
  for row in extremes["most"]:
    assert row["text"] == lineage[row["prompt_id"]].text


def test_difficulty_mix_counts_the_task_buckets(run, pool):
  task = tasks.get_task("addition")
  assert run.task.name == "addition"
  rows = run.difficulty_mix()
  for row in rows:
    records = pool.read_generation(row["generation"])
    assert row["counts"] == {b: sum(task.difficulty(r.text) == b for r in records) for b in row["counts"]}
    assert sum(row["counts"].values()) == len(records)
    assert sum(row["new_counts"].values()) == sum(r.generation == row["generation"] for r in records)
  buckets = list(rows[0]["counts"])
  assert buckets[0] == "1+1" and buckets.index("2+1") < buckets.index("2+2")


def test_rewards_by_round_match_the_summary(run, rounds):
  rows = run.rewards_by_round()
  assert [r["round"] for r in rows] == [1, 2]
  for row, entry in zip(rows, rounds[1:]):
    stats = entry["stats"]
    assert row["old_reward"] == stats["round/reward_mean"]
    assert row["new_reward"] == stats["round/new_prompt_reward_mean"]
    assert row["gap"] == pytest.approx(row["new_reward"] - row["old_reward"])
    assert row["pool_size"] == stats["round/pool_size"] and row["generation"] == entry["generation"]


def test_eval_tables_match_the_summary(run, rounds):
  buckets = list(
    dict.fromkeys(tasks.get_task("addition").difficulty(p) for p in tasks.ADDITION.eval_prompts(1))
  )
  rows = run.eval_by_bucket()
  assert [(r["round"], r["bucket"]) for r in rows] == [
    (entry["round"], b) for entry in rounds for b in [*buckets, curriculum.OVERALL]
  ]
  for row in rows:
    evaluation = rounds[row["round"]]["eval"]
    suffix = "" if row["bucket"] == curriculum.OVERALL else "/" + row["bucket"]
    assert row["exact_match"] == evaluation["eval/exact_match" + suffix]
    assert row["reward"] == evaluation["eval/task_reward" + suffix]
  table = run.before_after()
  assert [r["bucket"] for r in table] == [*buckets, curriculum.OVERALL]
  overall = table[-1]
  assert (overall["before_round"], overall["after_round"]) == (0, 2)
  assert overall["reward_before"] == rounds[0]["eval"]["eval/task_reward"]
  assert overall["exact_after"] == rounds[2]["eval"]["eval/exact_match"]


def test_scalar_series_reads_metrics_jsonl(run, run_dir):
  steps, nll = run.scalar_series("warmstart/nll")
  logged = [(r["step"], r["warmstart/nll"]) for r in metrics_lib.read_jsonl(run_dir) if "warmstart/nll" in r]
  assert steps.tolist() == [s for s, _ in logged] and nll.tolist() == [v for _, v in logged]
  assert len(steps) == 3  # steps 0, 20, 40 of 60
  assert run.scalar_series("no/such/metric")[0].size == 0


def test_pool_dir_can_point_elsewhere(run_dir, tmp_path):
  run = curriculum.Run(tmp_path, pool_dir=run_dir / "pool")
  assert [r["generation"] for r in run.pool_sizes()] == [0, 1, 2]


def test_clear_errors_for_missing_run_pool_and_summary(tmp_path):
  with pytest.raises(curriculum.RunDirError, match="no eva run directory at .*missing"):
    curriculum.Run(tmp_path / "missing")
  run = curriculum.Run(tmp_path)
  with pytest.raises(curriculum.RunDirError, match="no committed prompt-pool generation in .*pool"):
    run.pool_sizes()
  with pytest.raises(curriculum.RunDirError, match="no summary.json yet"):
    run.rewards_by_round()
  (tmp_path / "summary.json").write_text('{"rounds": [')
  with pytest.raises(curriculum.RunDirError, match="being written"):
    run.before_after()
  (tmp_path / "summary.json").write_text('{"rounds": [{"round": 0, "generation": 0, "eval": {}}]}')
  with pytest.raises(curriculum.RunDirError, match="no held-out evaluation"):
    run.before_after()


def test_text_table():
  rows = [{"bucket": "1+1", "exact": 0.5}, {"bucket": "all", "exact": math.nan}]
  assert curriculum.text_table(rows, digits=2).splitlines() == [
    "bucket  exact",
    "   1+1   0.50",
    "   all    nan",
  ]
  assert curriculum.text_table([]) == "(no rows)"
