"""A tiny offline eva run end to end on the real stack: pool lineage, metrics, checkpoints, resume."""

import json
import re
import shutil

import jax
import pytest

from configs import quickstart
from eva_jax import config as config_lib
from eva_jax.analysis import run_report
from eva_jax.creator import pool as pool_lib
from eva_jax.jobs import evaluate
from eva_jax.loop import metrics
from eva_jax.loop import run_state
from eva_jax.loop import runner


def _config(**overrides):
  config = quickstart.get_config()
  config.loop.rounds = 1
  config.loop.warmstart_steps = 80  # the warm-start path, on top of the base
  # Graded reward, any spread makes a pair: the base answers the 16 easy seeds right, so the binary
  # reward would leave round 1 nothing to train on.
  config.reward.task = "addition_lsb"
  config.loop.min_chosen_reward = float("-inf")
  config.loop.warmstart_batch_size = 16
  config.eval.per_bucket = 2
  config.loop.num_samples = 4
  config.loop.sample_batch_size = 16
  config.pool.num_seeds = 16
  config.creator.num_evolutions = 2
  config.solver.batch_size = 8
  config.solver.epochs = 1
  config_lib.override(config, overrides)
  return config


def _run(workdir, **overrides):
  config = _config(**overrides)
  cfg = config_lib.parse(config, jax.device_count())
  return runner.run(cfg, workdir, config_lib.flatten(config))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("eva_run")
  _run(workdir)
  return workdir


def test_one_round_grows_the_pool_with_lineage(run_dir):
  pool = pool_lib.Pool(run_dir / "pool")
  assert pool.generations() == [0, 1]
  seeds, gen1 = pool.read_generation(0), pool.read_generation(1)
  assert len(seeds) == 16 and all(r.source == "seed" for r in seeds)
  children = [r for r in gen1 if r.generation == 1]
  assert children and all(r.source == "evolved" for r in children)
  known = {r.prompt_id for r in gen1}
  assert all(c.parent_id in known and c.root_id in {s.prompt_id for s in seeds} for c in children)
  # The old prompts carry this round's reward statistics, and the new ones the scores the round
  # gave them after committing the generation (kept beside it; plain TFDS readers see them unscored).
  assert all(r.n == 4 for r in gen1 if r.generation == 0)
  assert all(c.n == 4 and 0.0 <= c.min <= c.mean <= c.max <= 1.0 for c in children)
  raw = pool.data_source(1)
  assert all(int(raw[i]["n"]) == 0 for i, r in enumerate(gen1) if r.generation == 1)
  assert set(pool.scores(1)) == {c.prompt_id for c in children}


def test_metrics_summary_and_checkpoint(run_dir):
  records = metrics.read_jsonl(run_dir)
  keys = set().union(*(r.keys() for r in records if r["kind"] == "scalars"))
  assert {
    "warmstart/nll",
    "train/loss",
    "train/rewards/accuracy",
    "round/train_pairs",
    "eval/exact_match",
  } <= keys
  assert any(r["kind"] == "histogram" and r["name"] == "creator/info" for r in records)
  summary = json.loads((run_dir / "summary.json").read_text())
  assert [r["round"] for r in summary["rounds"]] == [0, 1]
  assert summary["rounds"][1]["stats"]["round/train_pairs"] > 0
  assert run_state.RunCheckpoints(run_dir, 2).latest() == 1
  stats = summary["rounds"][1]["stats"]
  phases = ("sample", "score", "creator", "pool_io", "train", "eval", "checkpoint")
  assert all(stats[f"time/{p}"] >= 0 for p in phases) and stats["round/sampler_tokens_per_s"] > 0
  assert stats["time/sample"] + stats["time/train"] <= stats["round/seconds"]
  assert stats["round/sampled_tokens"] > 0 and 0 < stats["creator/yield"] <= 1
  assert sum(v for k, v in stats.items() if k.startswith("creator/method/")) == stats["creator/children"]


def test_every_series_moves_forward_on_its_own_axis(run_dir):
  """train/* on the global optimizer step, round summaries and evals on the round: never backwards."""
  last_step = {}
  for record in metrics.read_jsonl(run_dir):
    if record["kind"] != "scalars":
      continue
    for key in record.keys() - {"step", "kind"}:
      assert record["step"] > last_step.get(key, -1), (key, record["step"], last_step[key])
      last_step[key] = record["step"]
  summary = json.loads((run_dir / "summary.json").read_text())
  train_steps = summary["rounds"][1]["stats"]["round/train_steps"]
  assert train_steps > 0 and last_step["train/loss"] == train_steps  # steps 1..N of round 1
  assert run_state.RunCheckpoints(run_dir, 2).meta(1)["train_steps"] == train_steps


def test_summary_headline_reads_the_frontier_and_easy_buckets(run_dir):
  summary = json.loads((run_dir / "summary.json").read_text())
  h, first, last = summary["headline"], summary["rounds"][0]["eval"], summary["rounds"][-1]["eval"]
  assert h["frontier_bucket"] == "3+2" and h["seconds"] == summary["seconds"] > 0
  assert h["frontier_exact_round0"] == first["eval/exact_match/3+2"]
  assert h["frontier_exact_last"] == last["eval/exact_match/3+2"]
  assert h["frontier_reward_last"] == last["eval/task_reward/3+2"]
  assert h["easy_exact_last"] == min(last["eval/exact_match/1+1"], last["eval/exact_match/2+2"])


def test_end_of_run_report_tables_the_run(run_dir):
  report = run_report.final_report(run_dir, "", 1.0)
  summary = json.loads((run_dir / "summary.json").read_text())
  before_after = report.split("pool per generation")[0]
  exact = summary["rounds"][1]["eval"]["eval/exact_match/1+1"]
  assert "1+1             0            1" in before_after and f"{exact:.3f}" in before_after
  pool = pool_lib.Pool(run_dir / "pool")
  for generation in pool.generations():
    assert f"{generation:>10d}  {len(pool.read_generation(generation)):>7d}" in report
  assert str(run_dir / "summary.json") in report


def test_resume_continues_and_refuses_a_changed_config(run_dir):
  with pytest.raises(ValueError, match="solver.loss: stored 'dpo', now 'ipo'"):
    _run(run_dir, **{"loop.rounds": 2, "solver.loss": "ipo"})
  _run(run_dir, **{"loop.rounds": 2})
  summary = json.loads((run_dir / "summary.json").read_text())
  assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]  # round 1 was not redone
  assert pool_lib.Pool(run_dir / "pool").generations() == [0, 1, 2]


def test_a_round_recorded_but_not_checkpointed_is_redone_once(run_dir, tmp_path):
  # The state a kill between a round's summary write and its checkpoint leaves behind.
  workdir = tmp_path / "run"
  shutil.copytree(run_dir, workdir)
  finished = json.loads((workdir / "summary.json").read_text())
  shutil.rmtree(workdir / "checkpoints" / "2")
  _run(workdir, **{"loop.rounds": 2})
  summary = json.loads((workdir / "summary.json").read_text())
  assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]
  # metrics.jsonl holds each record once, as the uninterrupted run wrote them (times and the
  # redone round's marker that it read its committed pool generation back aside).
  varies = lambda k: k.startswith("time/") or "seconds" in k or "per_s" in k or k == "creator/reused"
  strip = lambda records: [{k: v for k, v in r.items() if not varies(k)} for r in records]
  assert strip(metrics.read_jsonl(workdir)) == strip(metrics.read_jsonl(run_dir))
  assert summary["rounds"][2]["eval"] == finished["rounds"][2]["eval"]  # the redone round, bit for bit


def test_creator_off_keeps_the_pool_static(tmp_path):
  _run(tmp_path, **{"loop.prompts": "static", "loop.rehearse": True})
  pool = pool_lib.Pool(tmp_path / "pool")
  assert pool.generations() == [0]
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["rounds"][1]["generation"] == 0
  # Rehearsal (off in the quickstart): the mastered seeds add NLL-only rows to the training pairs.
  stats = summary["rounds"][1]["stats"]
  assert stats["round/rehearsal_pairs"] > 0 and stats["round/train_pairs"] >= stats["round/rehearsal_pairs"]


def test_baseline_switches(tmp_path):
  _run(tmp_path / "fresh", **{"loop.prompts": "fresh", "pool.max_size": 20})
  pool = pool_lib.Pool(tmp_path / "fresh" / "pool")
  new = [r for r in pool.read_generation(1) if r.generation == 1]
  assert len(new) == 8  # as many as eva would evolve: 25% of 16 seeds x 2 evolutions
  assert all(r.method == "fresh" and r.source == "seed" and r.parent_id == "" for r in new)
  assert not {r.text for r in new} & {r.text for r in pool.read_generation(0)}
  assert len(pool.read_generation(1)) == 20  # pool.max_size holds for this arm as for eva's
  summary = _run(tmp_path / "subset", **{"loop.prompts": "subset"})
  stats = summary["rounds"][1]["stats"]
  assert stats["round/subset_prompts"] == 4  # 25% of 16 seeds
  assert stats["round/train_pairs"] <= 4 and pool_lib.Pool(tmp_path / "subset" / "pool").generations() == [0]


def test_eval_mode_evaluates_the_run_against_round0(run_dir):
  config = _config()
  cfg = config_lib.parse(config, jax.device_count())
  metrics_ = evaluate.run(cfg, run_dir)
  assert 0.0 <= metrics_["eval/win_rate"] <= 1.0 and "eval/exact_match/1+1" in metrics_
  saved = json.loads((run_dir / "eval" / "final" / "metrics.json").read_text())
  assert saved["eval/reward"] == pytest.approx(metrics_["eval/reward"])


def test_a_start_killed_between_round0_and_checkpoint_0_resumes(run_dir, tmp_path, capfd):
  # What a kill during the round-0 evaluation (or inside checkpoint 0's save) leaves: generation 0
  # and round0/, no checkpoint, no summary. The rerun rewrites round0/ and runs as if uninterrupted.
  finished = json.loads((run_dir / "summary.json").read_text())
  workdir = tmp_path / "run"
  shutil.copytree(run_dir, workdir)
  shutil.rmtree(workdir / "checkpoints")
  (workdir / "summary.json").unlink()
  for path in (workdir / "pool").iterdir():
    if not path.name.startswith("gen_000000"):
      shutil.rmtree(path) if path.is_dir() else path.unlink()
  assert (workdir / "round0").is_dir()
  summary = _run(workdir)
  assert "the warm start restarts from step 0 of 80" in capfd.readouterr().out
  assert [r["round"] for r in summary["rounds"]] == [0, 1]
  assert summary["rounds"][1]["eval"] == finished["rounds"][1]["eval"]  # bit for bit


def test_checkpoints_past_the_retention_are_pruned_but_never_the_verified_one(tmp_path):
  params = {"w": jax.numpy.arange(4.0)}
  wide = run_state.RunCheckpoints(tmp_path, 5)
  for step in range(4):
    wide.save(step, params, {"round": step})
  wide.close()
  checkpoints = run_state.RunCheckpoints(tmp_path, 2)
  assert checkpoints.prune(1) == [0]  # step 1 is the newest verified one: kept, and all after it
  assert sorted(checkpoints.manager.all_steps()) == [1, 2, 3]
  assert checkpoints.prune(3) == [1] and sorted(checkpoints.manager.all_steps()) == [2, 3]


def test_a_round_whose_steps_stay_non_finite_stops_and_keeps_the_checkpoint_before(run_dir, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(run_dir, workdir)
  # An lr no float32 update survives: the params overflow, and the steps after are non-finite.
  diverge = {"loop.rounds": 4, "solver.optimizer.learning_rate": 1e38, "solver.max_nonfinite_steps": 2}
  diverge |= {"solver.epochs": 4, "solver.optimizer.warmup_frac": 0.0}
  with pytest.raises(
    ValueError, match=r"round \d+: dpo epochs: 2 consecutive optimizer steps .*last finite loss"
  ) as e:
    _run(workdir, **diverge)
  stopped = int(re.match(r"round (\d+):", str(e.value)).group(1))
  # Nothing of the stopped round is saved: the newest checkpoint and summary round are the one before.
  assert run_state.RunCheckpoints(workdir, 2).latest() == stopped - 1
  assert json.loads((workdir / "summary.json").read_text())["rounds"][-1]["round"] == stopped - 1


def test_a_warm_start_that_diverges_stops_before_any_checkpoint(tmp_path):
  diverge = {"loop.warmstart_learning_rate": 1e38, "solver.max_nonfinite_steps": 3}
  with pytest.raises(ValueError, match=r"warm start \(SFT\): 3 consecutive optimizer steps"):
    _run(tmp_path, **diverge)
  assert run_state.RunCheckpoints(tmp_path, 2).latest() is None
