"""The quickstart's headline over several seeds: is the frontier gain a property of eva or of one seed?

    .venv/bin/python -m bench.quickstart_seeds [--seeds 0,1,2,3] [--quick]

Runs `configs/quickstart.py` as shipped (from the shipped base) once per `--config.seed` value, each
in its own workdir and subprocess (as `make quickstart` would), and prints each run's `headline`
from summary.json: greedy exact match on the frontier bucket (the first beyond the seed difficulty)
and on the worst easy bucket, round 0 -> last round, and the run's seconds. `--quick` runs one round
with 20 held-out prompts per bucket (for the tests' smoke run; its figures mean little).
The issue's bar: frontier exact up by >= 0.20 and no easy bucket down by more than 0.05, every seed.
Last line: JSON with `frontier_gain_<seed>`, `easy_drop_<seed>`, `seconds_<seed>`,
`min_frontier_gain`, `max_easy_drop`.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

FRONTIER_GAIN_BAR = 0.20
EASY_DROP_BAR = 0.05


def run_seed(seed: int, workdir: pathlib.Path, extra: list[str]) -> dict:
  cmd = [
    sys.executable,
    "-m",
    "eva_jax.main",
    "--config=configs/quickstart.py",
    f"--workdir={workdir}",
    f"--config.seed={seed}",
    *extra,
  ]
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  subprocess.run(cmd, check=True, stdout=sys.stderr, env=env)  # stdout stays the table
  return json.loads((workdir / "summary.json").read_text())["headline"]


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--seeds", default="0,1,2,3", help="comma-separated config seeds")
  parser.add_argument("--quick", action="store_true", help="one round, 20 eval prompts per bucket")
  args = parser.parse_args()
  seeds = [int(s) for s in args.seeds.split(",")]
  extra = ["--config.loop.rounds=1", "--config.eval.per_bucket=20"] if args.quick else []
  figures, rows = {}, []
  with tempfile.TemporaryDirectory(prefix="eva_qs_seeds_") as tmp:
    for seed in seeds:
      h = run_seed(seed, pathlib.Path(tmp) / f"seed{seed}", extra)
      gain = h["frontier_exact_last"] - h["frontier_exact_round0"]
      drop = h["easy_exact_round0"] - h["easy_exact_last"]
      figures |= {f"frontier_gain_{seed}": gain, f"easy_drop_{seed}": drop, f"seconds_{seed}": h["seconds"]}
      rows.append((seed, h, gain, drop))
      print(
        f"seed {seed}: frontier gain {gain:+.3f}, easy drop {drop:+.3f}, {h['seconds']:.0f} s", flush=True
      )
  bucket = rows[0][1].get("frontier_bucket", "frontier")
  print(f"\nquickstart headline per seed (greedy exact match; frontier = {bucket}, easy = worst easy bucket)")
  print(
    f"{'seed':>4} {'frontier r0':>11} {'last':>6} {'gain':>7} {'easy r0':>8} {'last':>6} {'drop':>7} {'s':>5}"
  )
  for seed, h, gain, drop in rows:
    print(
      f"{seed:>4} {h['frontier_exact_round0']:11.3f} {h['frontier_exact_last']:6.3f} {gain:+7.3f} "
      f"{h['easy_exact_round0']:8.3f} {h['easy_exact_last']:6.3f} {drop:+7.3f} {h['seconds']:5.0f}"
    )
  figures["min_frontier_gain"] = min(r[2] for r in rows)
  figures["max_easy_drop"] = max(r[3] for r in rows)
  holds = figures["min_frontier_gain"] >= FRONTIER_GAIN_BAR and figures["max_easy_drop"] <= EASY_DROP_BAR
  print(
    f"bar (frontier gain >= {FRONTIER_GAIN_BAR}, easy drop <= {EASY_DROP_BAR}, every seed): "
    + ("holds" if holds else "does not hold")
  )
  figures["bar_holds"] = int(holds)
  print(json.dumps(figures))


if __name__ == "__main__":
  main()
