"""The whole-run benchmarks at test size, through `bench.run_all --tiny --with-ablation` as a user runs them.

One subprocess runs every module (sampler, train_step, creator, round_profile, curriculum_ablation
with 1 seed x 2 arms) on the real loop; the tests read the merged JSON and each module's last line.
"""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from tests.hang_guard import HANG_GUARD_S

REPO = pathlib.Path(__file__).resolve().parents[2]
PHASES = ("sampling", "scoring", "creator", "pool_io", "training", "eval", "checkpoint", "other")


def _env() -> dict:
  """The user's environment: one CPU device (the test process forces 8 fake ones for itself)."""
  env = dict(os.environ)
  flags = [
    f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")
  ]
  env["XLA_FLAGS"] = " ".join(flags)
  env["JAX_PLATFORMS"] = "cpu"
  return env


@pytest.fixture(scope="module")
def results(tmp_path_factory):
  out = tmp_path_factory.mktemp("bench") / "results.json"
  proc = subprocess.run(
    [sys.executable, "-m", "bench.run_all", "--tiny", "--with-ablation", f"--out={out}"],
    cwd=REPO,
    env=_env(),
    capture_output=True,
    text=True,
    timeout=HANG_GUARD_S,  # the smoke run takes 4-8 min quiet, 12 under a loaded suite
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  last = json.loads(proc.stdout.strip().splitlines()[-1])
  merged = json.loads(out.read_text())
  return {"last": last, "merged": merged, "dir": out.parent}


def _module_last_line(results, name) -> dict:
  """A module's own last stdout line (the benchmark contract), as run_all kept it."""
  lines = (results["dir"] / f"{name}.txt").read_text().strip().splitlines()
  return json.loads(lines[-1])


def _finite_positive(value) -> bool:
  return isinstance(value, int | float) and math.isfinite(value) and value > 0


def test_round_profile_contract(results):
  figures = _module_last_line(results, "round_profile")
  assert figures == results["merged"]["modules"]["round_profile"]["figures"]
  for key in ("round_s", "compiles", "compile_s", "peak_rss_mib", "sampler_tok_s"):
    assert _finite_positive(figures[key]), (key, figures[key])
  shares = [figures[f"share_{p}"] for p in PHASES]
  assert all(math.isfinite(s) and 0 <= s <= 1 for s in shares)
  assert sum(shares) == pytest.approx(1.0, abs=1e-6)
  # The run really trained and sampled: those phases took time.
  assert figures["share_training"] > 0 and figures["share_sampling"] > 0 and figures["train_pairs"] > 0
  assert figures["creator_pool_io_share"] == pytest.approx(
    figures["share_creator"] + figures["share_pool_io"]
  )
  assert figures["steady_round_s"] > 0  # two rounds at tiny size: the second is reported apart


def test_curriculum_ablation_contract(results):
  figures = _module_last_line(results, "curriculum_ablation")
  assert figures["seeds"] == 1
  for arm in ("static", "gap"):
    for key in ("reward_mean", "exact_mean"):
      value = figures[f"{arm}_{key}"]
      assert math.isfinite(value) and 0 <= value <= 1, (arm, key, value)
    assert figures[f"{arm}_reward_ci95"] is None  # one seed: no interval
    assert _finite_positive(figures[f"{arm}_train_pairs"]) and figures[f"{arm}_train_pairs"] <= 8  # the cap
    assert _finite_positive(figures[f"{arm}_sampled_tokens"])
    assert _finite_positive(figures[f"{arm}_wall_s"])
    assert figures[f"{arm}_rounds"] == 1
    assert any(k.startswith(f"{arm}_exact_") and k.endswith("+1_mean") for k in figures)  # per bucket
  assert math.isfinite(figures["gap_minus_static_reward_mean"])
  assert "gap_minus_uniform_reward_mean" not in figures  # uniform was not run
  # The primary metric (held-out reward beyond the seeds' difficulty) for every arm, online ones too.
  for arm in ("static", "gap", "online_weighted", "online_uniform"):
    assert 0 <= figures[f"frontier_reward_{arm}"] <= 1, arm
  assert figures["gap_minus_static_low"] is None  # one seed: no interval
  assert (
    figures["online_weighted_minus_online_uniform_low"]
    is figures["online_weighted_minus_uniform_low"]
    is None
  )
  assert math.isfinite(figures["online_weighted_minus_online_uniform_frontier_reward_mean"])
  assert _finite_positive(figures["online_weighted_sampled_tokens"])
  assert figures["online_seeds"] == 1 and figures["online_steps"] == 4


def test_run_all_merges_every_module(results):
  merged = results["merged"]
  assert set(merged["modules"]) == {
    "sampler",
    "train_step",
    "creator",
    "round_profile",
    "curriculum_ablation",
  }
  machine = merged["machine"]
  assert machine["cpu_count"] >= 1 and machine["backend"] == "cpu" and machine["jax"] and machine["date"]
  last = results["last"]
  assert last == merged["flat"]
  for key in (
    "sampler.ours_tok_s",
    "sampler.ratio",
    "train_step.dpo_tok_s",
    "train_step.dpo_mfu_f32",
    "creator.creator_s_per_1k",
    "round_profile.round_s",
    "curriculum_ablation.gap_reward_mean",
  ):
    assert math.isfinite(last[key]), key
