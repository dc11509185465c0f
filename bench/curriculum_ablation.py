"""The paper's claim in miniature: does an evolving, informativeness-guided curriculum beat the baselines?

    .venv/bin/python -m bench.curriculum_ablation [--quick | --tiny] [--seeds N] [--arms a,b,...]
        [--rounds R] [--per-bucket K] [--max-train-pairs P] [--online-seeds N] [--online-steps S]

Arms are config switches on configs/quickstart.py (everything else identical), all from the
shipped base model (eva_jax/models/base_model.py); the seed varies every random choice of the run
(seed pool, sampling, creator, mixing, batches), never the base:

  static           loop.prompts=static         the seed pool every round (creator off)
  fresh            loop.prompts=fresh          as many new seed-distribution prompts as eva would evolve
  uniform          creator.info_metric=uniform evolving, prompts drawn uniformly
  gap              creator.info_metric=gap     eva (max - min of the n rewards)
  maxmean          creator.info_metric=maxmean
  var              creator.info_metric=var
  online_weighted  configs/quickstart_rloo.py, loop.draw=weighted: RLOO, prompts drawn by gap
  online_uniform   configs/quickstart_rloo.py, loop.draw=uniform (the same steps x prompts x samples)

Same budget per offline arm: every round trains on exactly min(P, available) pairs
(`loop.max_train_pairs = P`); the table reports each arm's pairs and sampled tokens so an unequal
budget is visible. The online arms take the same number of RLOO steps of the same size.

Round 0 once per seed: a run with `loop.rounds=0` (seed pool, base, round-0 eval, checkpoint 0) is
copied into each offline arm's workdir and resumed there with the arm's config (the runner's resume
check accepts it: the pinned fields agree), so every offline arm starts from the same params and
pool. One subprocess per seed runs all its arms in sequence (the order rotates with the seed);
`--jobs` of them run at once (default 2, one per core of a 2-core machine; results do not depend on it).

Primary metric: held-out (graded) task reward averaged over the buckets beyond the seeds'
difficulty (`frontier_reward_<arm>`; also exact match), after the last round. Reported per arm over
seeds as mean and 95% Student-t half-width (null with one seed); paired per-seed differences gap -
static, gap - fresh, gap - uniform and online_weighted - online_uniform with their t-intervals and
lower ends (`<a>_minus_<b>_low`). Last line: JSON.

Sizes:
  full   6 offline arms x 5 seeds (the quickstart's 7 rounds, at most 256 pairs per round) + 2
         online arms x 3 seeds (120 RLOO steps), 100 eval prompts per bucket (700): about 85
         minutes on a 2-core CPU with --jobs 2 (the rounds' frontier gain builds over 7 rounds; at 3
         rounds every arm ended at or below round 0)
  quick  static, fresh, uniform, gap x 3 seeds (2 rounds, 128 seed prompts, 128 pairs per round)
         + online x 3 seeds (40 steps), 40 eval prompts per bucket: a smoke of the statistics, not
         of the effect (rounds 1-2 dip below round 0 on the frontier); not timed
  tiny   static, gap, online_weighted, online_uniform x 1 seed, bench.common.TINY_OVERRIDES, 1 round
"""

import argparse
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

ARMS = {
  "static": {"loop.prompts": "static"},
  "fresh": {"loop.prompts": "fresh"},
  "uniform": {"creator.info_metric": "uniform"},
  "gap": {"creator.info_metric": "gap"},
  "maxmean": {"creator.info_metric": "maxmean"},
  "var": {"creator.info_metric": "var"},
  # Online (configs/quickstart_rloo.py): RLOO steps; prompts drawn by gap or uniformly, the creator
  # evolving the pool either way; equal steps x prompts x samples, so equal sampled tokens up to lengths.
  "online_weighted": {"loop.draw": "weighted"},
  "online_uniform": {"loop.draw": "uniform"},
}
OFFLINE_ARMS = tuple(a for a in ARMS if not a.startswith("online"))
ONLINE_ARMS = ("online_weighted", "online_uniform")

SIZES = {
  "full": {
    "arms": tuple(ARMS),
    "seeds": 5,
    "online_seeds": 3,
    "rounds": 7,  # the quickstart's: its frontier gain builds over rounds (rounds 1-2 dip below round 0)
    "online_steps": 120,
    "per_bucket": 100,
    "max_train_pairs": 256,
    "overrides": {},
  },
  "quick": {
    "arms": ("static", "fresh", "uniform", "gap", "online_weighted", "online_uniform"),
    "seeds": 3,
    "online_seeds": 3,
    "rounds": 2,
    "online_steps": 40,
    "per_bucket": 40,
    "max_train_pairs": 128,
    "overrides": {"pool.num_seeds": 128},
  },
  "tiny": {
    "arms": ("static", "gap", "online_weighted", "online_uniform"),
    "seeds": 1,
    "online_seeds": 1,
    "rounds": 1,
    "online_steps": 4,
    "per_bucket": 1,
    "max_train_pairs": 8,
    "overrides": {},  # bench.common.TINY_OVERRIDES (applied by the worker)
  },
}

PAIRED = (("gap", "static"), ("gap", "fresh"), ("gap", "uniform"), ("online_weighted", "online_uniform"))


def t_interval(values) -> tuple[float, float | None]:
  """(mean, 95% Student-t half-width); the half-width is None for fewer than two values."""
  values = np.asarray(values, np.float64)
  mean = float(values.mean())
  if values.size < 2:
    return mean, None
  sd = float(values.std(ddof=1))
  return mean, float(scipy_stats.t.ppf(0.975, values.size - 1) * sd / math.sqrt(values.size))


# ---------------------------------------------------------------------------------------------------
# Worker: one seed, its warm start and every arm, in one process.


def _arm_config(base_overrides: dict, arm: str, seed: int, rounds: int, online_steps: int = 0):
  from bench import common

  if arm in ONLINE_ARMS:
    from configs import quickstart_rloo
    from eva_jax import config as config_lib

    online = {"loop.steps": online_steps, "loop.checkpoint_every_steps": online_steps}
    if online_steps < 2 * quickstart_rloo.get_config().loop.creator_every_steps:
      online["loop.creator_every_steps"] = max(1, online_steps // 2)  # short runs still evolve
    keep = {k: v for k, v in base_overrides.items() if not k.startswith("solver.")}  # RLOO's own batch
    return config_lib.override(quickstart_rloo.get_config(), {**keep, "seed": seed, **online, **ARMS[arm]})
  return common.quickstart_config(
    {**base_overrides, "seed": seed, "loop.rounds": rounds, "eval.every_rounds": max(rounds, 1), **ARMS[arm]}
  )


def _final_pool(stats: dict) -> int:
  return int(stats.get("creator/pool_size", stats.get("round/pool_size", stats.get("online/pool_size", 0))))


def worker(args) -> None:
  from bench import common

  base_overrides = json.loads(args.overrides)
  root = pathlib.Path(args.dir)
  result = {"seed": args.seed, "arms": {}}
  base = root / "warmstart"
  start = time.perf_counter()
  summary = common.run_quickstart(_arm_config(base_overrides, "gap", args.seed, 0), base)
  result["warmstart_s"] = time.perf_counter() - start
  result["round0_eval"] = summary["rounds"][0]["eval"]
  arms = [a for a in args.arms.split(",") if a]
  shift = args.seed % max(len(arms), 1)
  for arm in arms[shift:] + arms[:shift]:
    workdir = root / arm
    if arm not in ONLINE_ARMS:  # offline arms resume the shared round-0 run; online ones start anew
      shutil.copytree(base, workdir)
    print(f"seed {args.seed}: arm {arm}", flush=True)
    start = time.perf_counter()
    config = _arm_config(base_overrides, arm, args.seed, args.rounds, args.online_steps)
    summary = common.run_quickstart(config, workdir)
    wall = time.perf_counter() - start
    rounds = [r for r in summary["rounds"] if r["round"] != 0]
    result["arms"][arm] = {
      "eval": rounds[-1]["eval"] if rounds else summary["rounds"][0]["eval"],
      "rounds": len(rounds),
      "train_pairs": sum(int(r["stats"].get("round/train_pairs", 0)) for r in rounds),
      "sampled_tokens": sum(
        float(r["stats"].get("round/sampled_tokens", r["stats"].get("online/sampled_tokens", 0)))
        for r in rounds
      ),
      "round_s": sum(float(r["stats"].get("round/seconds", 0.0)) for r in rounds),
      "wall_s": wall,
      # The pool the last round left (evolve/fresh write a new generation; static keeps its own).
      "final_pool": _final_pool(rounds[-1]["stats"]) if rounds else 0,
    }
    shutil.rmtree(workdir)  # pools and checkpoints: only the summary figures are kept
  pathlib.Path(args.result).write_text(json.dumps(result, default=float))


# ---------------------------------------------------------------------------------------------------
# Driver: one worker subprocess per seed, then the statistics.


def _buckets(evaluation: dict) -> list[str]:
  return [k.rsplit("/", 1)[1] for k in evaluation if k.startswith("eval/exact_match/")]


def beyond_seeds(evaluation: dict, name: str) -> float:
  """The primary metric: mean held-out `name` ("reward" or "exact") over the buckets beyond the seeds."""
  from eva_jax.tasks import addition

  prefix = "eval/task_reward/" if name == "reward" else "eval/exact_match/"
  values = [evaluation[prefix + b] for b in _buckets(evaluation) if b not in addition.EASY_BUCKETS]
  return float(np.mean(values)) if values else float("nan")


def aggregate(per_seed: list[dict], arms: list[str]) -> dict:
  """Means and t-intervals per arm and the paired differences, from the workers' results."""
  figures: dict = {"seeds": len(per_seed)}
  buckets = _buckets(per_seed[0]["arms"][arms[0]]["eval"])

  def series(arm, key):
    if key.startswith("beyond/"):
      return [beyond_seeds(s["arms"][arm]["eval"], key.split("/")[1]) for s in per_seed if arm in s["arms"]]
    return [s["arms"][arm]["eval"].get(key, float("nan")) for s in per_seed if arm in s["arms"]]

  for arm in arms:
    for name, key in (
      ("reward", "eval/reward"),
      ("exact", "eval/exact_match"),
      ("win_rate", "eval/win_rate"),
      ("frontier_reward", "beyond/reward"),
      ("frontier_exact", "beyond/exact"),
    ):
      mean, ci = t_interval(series(arm, key))
      figures[f"{arm}_{name}_mean"], figures[f"{arm}_{name}_ci95"] = mean, ci
    figures[f"frontier_reward_{arm}"] = figures[f"{arm}_frontier_reward_mean"]
    for b in buckets:
      for name, key in (("exact", "eval/exact_match/"), ("reward", "eval/task_reward/")):
        mean, ci = t_interval(series(arm, key + b))
        figures[f"{arm}_{name}_{b}_mean"], figures[f"{arm}_{name}_{b}_ci95"] = mean, ci
    for key in ("train_pairs", "sampled_tokens", "wall_s", "round_s", "rounds", "final_pool"):
      figures[f"{arm}_{key}"] = float(np.mean([s["arms"][arm][key] for s in per_seed if arm in s["arms"]]))
  for name, key in (("reward", "eval/reward"), ("exact", "eval/exact_match")):
    mean, ci = t_interval([s["round0_eval"][key] for s in per_seed])
    figures[f"round0_{name}_mean"], figures[f"round0_{name}_ci95"] = mean, ci
  figures["warmstart_s"] = float(np.mean([s["warmstart_s"] for s in per_seed]))
  figures["round0_frontier_reward_mean"], figures["round0_frontier_reward_ci95"] = t_interval(
    [beyond_seeds(s["round0_eval"], "reward") for s in per_seed]
  )
  for a, b in PAIRED:
    if a in arms and b in arms:
      for name, key in (
        ("reward", "eval/reward"),
        ("exact", "eval/exact_match"),
        ("frontier_reward", "beyond/reward"),
        ("frontier_exact", "beyond/exact"),
      ):
        diffs = np.asarray(series(a, key)) - np.asarray(series(b, key))
        mean, ci = t_interval(diffs)
        figures[f"{a}_minus_{b}_{name}_mean"], figures[f"{a}_minus_{b}_{name}_ci95"] = mean, ci
        figures[f"{a}_minus_{b}_{name}_wins"] = int((diffs > 0).sum())
      # The keys: lower ends of the paired 95% intervals of the primary metric (None: 1 seed).
      mean, ci = (
        figures[f"{a}_minus_{b}_frontier_reward_mean"],
        figures[f"{a}_minus_{b}_frontier_reward_ci95"],
      )
      figures[f"{a}_minus_{b}_low"] = None if ci is None else mean - ci
  if "online_weighted_minus_online_uniform_low" in figures:  # the name for it
    figures["online_weighted_minus_uniform_low"] = figures["online_weighted_minus_online_uniform_low"]
  return figures


def _pm(mean, ci, scale=1.0, digits=3) -> str:
  if ci is None:
    return f"{scale * mean:.{digits}f}"
  return f"{scale * mean:.{digits}f} ± {scale * ci:.{digits}f}"


def print_tables(figures: dict, per_seed: list[dict], arms: list[str]) -> None:
  buckets = _buckets(per_seed[0]["arms"][arms[0]]["eval"])
  n = figures["seeds"]
  print(f"\nheld-out, final round, mean ± 95% t-interval half-width over {n} seed(s) (t, {n - 1} df)")
  print("(frontier = the primary metric: mean over the buckets beyond the seeds' difficulty)")
  print(
    f"{'arm':>15} {'frontier reward':>15} {'reward':>15} {'exact %':>13} {'win vs r0 %':>13} {'pairs':>7} "
    f"{'tokens':>9} {'rounds':>6} {'wall s':>7}"
  )
  print(
    f"{'round 0':>15} {_pm(figures['round0_frontier_reward_mean'], figures['round0_frontier_reward_ci95']):>15} "
    f"{_pm(figures['round0_reward_mean'], figures['round0_reward_ci95']):>15} "
    f"{_pm(figures['round0_exact_mean'], figures['round0_exact_ci95'], 100, 1):>13}"
  )
  for arm in arms:
    print(
      f"{arm:>15} {_pm(figures[f'{arm}_frontier_reward_mean'], figures[f'{arm}_frontier_reward_ci95']):>15} "
      f"{_pm(figures[f'{arm}_reward_mean'], figures[f'{arm}_reward_ci95']):>15} "
      f"{_pm(figures[f'{arm}_exact_mean'], figures[f'{arm}_exact_ci95'], 100, 1):>13} "
      f"{_pm(figures[f'{arm}_win_rate_mean'], figures[f'{arm}_win_rate_ci95'], 100, 1):>13} "
      f"{figures[f'{arm}_train_pairs']:>7.0f} {figures[f'{arm}_sampled_tokens']:>9.0f} "
      f"{figures[f'{arm}_rounds']:>6.0f} {figures[f'{arm}_wall_s']:>7.1f}"
    )
  print("\nexact match % by difficulty bucket (mean over seeds)")
  print(f"{'arm':>15} " + " ".join(f"{b:>7}" for b in buckets))
  for arm in arms:
    print(f"{arm:>15} " + " ".join(f"{100 * figures[f'{arm}_exact_{b}_mean']:>7.1f}" for b in buckets))
  print("\ntask reward by difficulty bucket (mean over seeds)")
  print(f"{'arm':>15} " + " ".join(f"{b:>7}" for b in buckets))
  for arm in arms:
    print(f"{arm:>15} " + " ".join(f"{figures[f'{arm}_reward_{b}_mean']:>7.3f}" for b in buckets))
  for a, b in PAIRED:
    if f"{a}_minus_{b}_reward_mean" in figures:
      print(
        f"paired {a} - {b} (per seed): frontier reward "
        f"{_pm(figures[f'{a}_minus_{b}_frontier_reward_mean'], figures[f'{a}_minus_{b}_frontier_reward_ci95'], digits=4)}, "
        f"frontier exact {_pm(figures[f'{a}_minus_{b}_frontier_exact_mean'], figures[f'{a}_minus_{b}_frontier_exact_ci95'], 100, 2)} points, "
        f"overall reward {_pm(figures[f'{a}_minus_{b}_reward_mean'], figures[f'{a}_minus_{b}_reward_ci95'], digits=4)}, "
        f"exact {_pm(figures[f'{a}_minus_{b}_exact_mean'], figures[f'{a}_minus_{b}_exact_ci95'], 100, 2)} points; "
        f"{a} ahead on frontier reward in {figures[f'{a}_minus_{b}_frontier_reward_wins']} seeds"
      )


def main():
  parser = argparse.ArgumentParser()
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--quick", action="store_true", help="static/uniform/gap x 3 seeds, 1 round, small pool")
  size.add_argument("--tiny", action="store_true", help="test size: static/gap x 1 seed")
  parser.add_argument("--seeds", type=int, default=0, help="seeds 0..N-1 (default: by size)")
  parser.add_argument("--arms", default="", help=f"comma-separated subset of {','.join(ARMS)}")
  parser.add_argument("--rounds", type=int, default=0, help="eva rounds per arm (default: by size)")
  parser.add_argument(
    "--per-bucket", type=int, default=0, help="held-out prompts per bucket (default: by size)"
  )
  parser.add_argument("--max-train-pairs", type=int, default=-1, help="pairs per round, all arms (0 = all)")
  parser.add_argument(
    "--online-seeds", type=int, default=0, help="seeds of the online arms (default: by size)"
  )
  parser.add_argument(
    "--online-steps", type=int, default=0, help="RLOO steps per online arm (default: by size)"
  )
  parser.add_argument(
    "--jobs", type=int, default=2, help="seed workers at once (2 keeps both cores of a 2-core machine busy)"
  )
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
  parser.add_argument("--dir", default="", help=argparse.SUPPRESS)
  parser.add_argument("--result", default="", help=argparse.SUPPRESS)
  parser.add_argument("--overrides", default="{}", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    return worker(args)

  size_name = "tiny" if args.tiny else "quick" if args.quick else "full"
  size = SIZES[size_name]
  arms = args.arms.split(",") if args.arms else list(size["arms"])
  unknown = [a for a in arms if a not in ARMS]
  if unknown:
    parser.error(f"unknown arms {unknown}; known: {list(ARMS)}")
  seeds = args.seeds or size["seeds"]
  online_seeds = args.online_seeds or size["online_seeds"]
  online_steps = args.online_steps or size["online_steps"]
  rounds = args.rounds or size["rounds"]
  per_bucket = args.per_bucket or size["per_bucket"]
  max_pairs = size["max_train_pairs"] if args.max_train_pairs < 0 else args.max_train_pairs
  overrides = dict(size["overrides"])
  if size_name == "tiny":
    from bench import common  # here: the driver of the other sizes never imports jax

    overrides = dict(common.TINY_OVERRIDES)
  overrides |= {"eval.per_bucket": per_bucket, "loop.max_train_pairs": max_pairs}
  print(
    f"curriculum ablation ({size_name}): arms {','.join(arms)}; {seeds} seed(s) offline, {online_seeds} online; "
    f"{rounds} round(s) offline, {online_steps} RLOO steps online; "
    f"{per_bucket} eval prompts per bucket; max {max_pairs} training pairs per round; overrides {overrides}",
    flush=True,
  )

  start = time.perf_counter()
  with tempfile.TemporaryDirectory(prefix="eva_ablation_") as tmp:
    all_seeds = range(max(seeds, online_seeds) if any(a in ONLINE_ARMS for a in arms) else seeds)
    running: dict[int, tuple] = {}
    results: dict[int, dict] = {}
    pending = list(all_seeds)
    while pending or running:
      while pending and len(running) < max(args.jobs, 1):
        seed = pending.pop(0)
        seed_arms = [a for a in arms if seed < (online_seeds if a in ONLINE_ARMS else seeds)]
        result = pathlib.Path(tmp) / f"seed{seed}.json"
        cmd = [
          sys.executable,
          "-m",
          "bench.curriculum_ablation",
          "--worker",
          f"--seed={seed}",
          f"--dir={tmp}/seed{seed}",
          f"--result={result}",
          f"--arms={','.join(seed_arms)}",
          f"--rounds={rounds}",
          f"--online-steps={online_steps}",
          f"--overrides={json.dumps(overrides)}",
        ]
        # The workers' own output (run lines, progress bars) goes to stderr: stdout stays the table.
        running[seed] = (subprocess.Popen(cmd, stdout=sys.stderr), result, time.perf_counter())
      time.sleep(1.0)
      for seed, (proc, result, seed_start) in list(running.items()):
        if proc.poll() is None:
          continue
        del running[seed]
        if proc.returncode:
          for other, *_ in running.values():
            other.kill()
          raise SystemExit(f"seed {seed}: the worker failed (exit {proc.returncode}); its log is above")
        results[seed] = json.loads(result.read_text())
        print(
          f"seed {seed}: round 0 {results[seed]['warmstart_s']:.0f}s, arms "
          + ", ".join(f"{a} {v['eval']['eval/reward']:.3f}" for a, v in results[seed]["arms"].items())
          + f" (held-out reward); {time.perf_counter() - seed_start:.0f}s",
          flush=True,
        )
  per_seed = [results[s] for s in sorted(results)]
  figures = aggregate(per_seed, arms)
  figures["online_seeds"] = online_seeds if any(a in ONLINE_ARMS for a in arms) else 0
  figures["online_steps"] = online_steps
  figures["wall_s"] = time.perf_counter() - start
  figures["rounds_per_arm"] = rounds
  figures["max_train_pairs"] = max_pairs
  figures["eval_per_bucket"] = per_bucket
  print_tables(figures, per_seed, arms)
  print(f"total {figures['wall_s']:.0f}s")
  print(json.dumps(figures))


if __name__ == "__main__":
  main()
