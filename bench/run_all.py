"""Every benchmark in one go: each module as a subprocess, one combined table, one merged JSON file.

    .venv/bin/python -m bench.run_all [--quick | --tiny] [--with-ablation] [--only a,b] [--out PATH]

Runs bench.sampler, bench.train_step, bench.creator and bench.round_profile (and, with
--with-ablation, bench.curriculum_ablation: about 85 minutes at full size) one after another, each in
its own process with the same size flag, so no run's compilations or memory leak into the next.
Each module's last stdout line is its JSON figures (the benchmark contract); its whole stdout is
kept in `<out dir>/<module>.txt`. The merged file (default /tmp/eva_bench/results.json) holds the
machine (CPU count, platform, Python, jax version and backend, devices, date), the command, each
module's figures and wall time, and all figures flattened as `<module>.<key>`. The last stdout line
is the flattened figures as JSON.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

MODULES = ("sampler", "train_step", "creator", "round_profile")
ABLATION = "curriculum_ablation"

# The headline figures of each module for the combined table: (key, label, format).
HEADLINES = {
  "sampler": (
    ("ours_tok_s", "ours tok/s (n=6)", ",.0f"),
    ("gemma_tok_s", "gemma tok/s", ",.0f"),
    ("ratio", "ratio", ".2f"),
  ),
  "train_step": (
    ("matmul_peak_f32_gflops", "matmul peak GFLOP/s", ",.0f"),
    ("dpo_tok_s", "DPO tok/s", ",.0f"),
    ("dpo_mfu_f32", "DPO MFU", ".1%"),
    ("rloo_tok_s", "RLOO tok/s", ",.0f"),
    ("rloo_mfu_f32", "RLOO MFU", ".1%"),
  ),
  "creator": (
    ("prompts", "prompts", ",.0f"),
    ("write_read_s", "pool write+read s", ".2f"),
    ("creator_s_per_1k", "creator s / 1k prompts", ".3f"),
  ),
  "round_profile": (
    ("round_s", "round s", ".1f"),
    ("share_sampling", "sampling", ".1%"),
    ("share_training", "training", ".1%"),
    ("creator_pool_io_share", "creator + pool IO", ".2%"),
    ("sampler_tok_s", "sampler tok/s", ",.0f"),
    ("compiles", "compiles", ".0f"),
    ("compile_s", "compile s", ".1f"),
    ("peak_rss_mib", "peak RSS MiB", ",.0f"),
  ),
  ABLATION: (
    ("static_reward_mean", "static reward", ".3f"),
    ("uniform_reward_mean", "uniform reward", ".3f"),
    ("gap_reward_mean", "gap (eva) reward", ".3f"),
    ("gap_minus_static_reward_mean", "gap - static", "+.4f"),
    ("gap_minus_uniform_reward_mean", "gap - uniform", "+.4f"),
  ),
}


def machine() -> dict:
  """This machine and software, from a subprocess (the driver itself never imports jax)."""
  probe = (
    "import json, jax; d = jax.devices(); "
    "print(json.dumps({'jax': jax.__version__, 'backend': jax.default_backend(), "
    "'devices': len(d), 'device_kind': d[0].device_kind}))"
  )
  out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
  info = json.loads(out.strip().splitlines()[-1])
  cpu_model = ""
  cpuinfo = pathlib.Path("/proc/cpuinfo")
  if cpuinfo.exists():
    cpu_model = next(
      (
        line.split(":", 1)[1].strip()
        for line in cpuinfo.read_text().splitlines()
        if line.startswith("model name")
      ),
      "",
    )
  return {
    "cpu_count": os.cpu_count(),
    "cpu_model": cpu_model or platform.processor(),
    "platform": platform.platform(),
    "python": platform.python_version(),
    **info,
    "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
  }


def last_json(text: str) -> dict:
  lines = [line for line in text.splitlines() if line.strip()]
  if not lines:
    raise ValueError("no output")
  return json.loads(lines[-1])


def run_module(name: str, size_flag: list[str], out_dir: pathlib.Path) -> dict:
  start = time.perf_counter()
  proc = subprocess.run([sys.executable, "-m", f"bench.{name}", *size_flag], capture_output=True, text=True)
  seconds = time.perf_counter() - start
  (out_dir / f"{name}.txt").write_text(proc.stdout)
  (out_dir / f"{name}.err.txt").write_text(proc.stderr)
  if proc.returncode != 0:
    tail = "\n".join(proc.stderr.splitlines()[-15:])
    raise RuntimeError(f"bench.{name} failed (exit {proc.returncode}):\n{tail}")
  return {
    "figures": last_json(proc.stdout),
    "seconds": seconds,
    "table": proc.stdout.rstrip().splitlines()[:-1],
  }


def main():
  parser = argparse.ArgumentParser()
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--quick", action="store_true", help="every module with --quick")
  size.add_argument("--tiny", action="store_true", help="every module with --tiny (the tests' size)")
  parser.add_argument("--with-ablation", action="store_true", help=f"also bench.{ABLATION} (long)")
  parser.add_argument("--only", default="", help="comma-separated subset of the modules")
  parser.add_argument("--out", default="/tmp/eva_bench/results.json", help="merged JSON file")
  parser.add_argument("--show-tables", action="store_true", help="print each module's own table too")
  args = parser.parse_args()
  size_flag = ["--tiny"] if args.tiny else ["--quick"] if args.quick else []
  modules = list(MODULES) + ([ABLATION] if args.with_ablation else [])
  if args.only:
    modules = [m for m in args.only.split(",") if m]
    unknown = [m for m in modules if m not in (*MODULES, ABLATION)]
    if unknown:
      parser.error(f"unknown modules {unknown}; known: {[*MODULES, ABLATION]}")
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)

  results = {
    "machine": machine(),
    "command": " ".join([pathlib.Path(sys.executable).name, "-m", "bench.run_all", *sys.argv[1:]]),
    "size": "tiny" if args.tiny else "quick" if args.quick else "full",
    "modules": {},
  }
  m = results["machine"]
  print(
    f"{m['cpu_count']} CPUs ({m['cpu_model']}), {m['platform']}, Python {m['python']}, "
    f"jax {m['jax']} on {m['devices']} {m['backend']} device(s), {m['date']}",
    flush=True,
  )
  for name in modules:
    print(f"bench.{name} {' '.join(size_flag)} ...", flush=True)
    result = run_module(name, size_flag, out.parent)
    results["modules"][name] = {"figures": result["figures"], "seconds": result["seconds"]}
    print(f"  done in {result['seconds']:.0f}s", flush=True)
    if args.show_tables:
      print("\n".join(f"  | {line}" for line in result["table"]))

  print(f"\n{'module':<20} {'figure':<24} {'value':>14}")
  for name, result in results["modules"].items():
    figures = result["figures"]
    for key, label, fmt in HEADLINES[name]:
      if key in figures and figures[key] is not None:
        print(f"{name:<20} {label:<24} {format(figures[key], fmt):>14}")
    print(f"{name:<20} {'(wall s)':<24} {result['seconds']:>14.0f}")
  flat = {f"{name}.{k}": v for name, r in results["modules"].items() for k, v in r["figures"].items()}
  results["flat"] = flat
  out.write_text(json.dumps(results, indent=1))
  print(f"wrote {out}")
  print(json.dumps(flat))


if __name__ == "__main__":
  main()
