"""Where an eva round's wall time goes: the quickstart run end to end, phase by phase.

    .venv/bin/python -m bench.round_profile [--quick | --tiny] [--workdir DIR]

Runs configs/quickstart.py (the real loop: warm start, offline rounds, held-out eval, checkpoints)
into a temporary workdir, in this process, and reads the per-round phase seconds the loop records in
`<workdir>/summary.json` (summary["rounds"][i]["stats"], i >= 1):

  sampling    time/sample      n responses per pool prompt and per evolved prompt (jitted sampler)
  scoring     time/score       the reward source (the task's graded reward)
  creator     time/creator     informativeness, selection, evolution, filters
  pool_io     time/pool_io     TFDS pool generation reads and writes
  training    time/train       reference log-probs + DPO-family epochs
  eval        time/eval        held-out evaluation after the round
  checkpoint  time/checkpoint  the orbax run checkpoint
  other       round/seconds minus the in-round phases (pairing, mixing, bookkeeping)

A round is `round/seconds` + eval + checkpoint. Shares are of the summed rounds ("overall") and per
round; round 1 carries most of the compilation, so rounds >= 2 are also reported as "steady".
Also: the check "creator + pool IO under 5% of a round", the sampler's tokens/s, XLA compilations
over the whole run (count and seconds, from `jax.monitoring`'s backend-compile events; tracing and
lowering reported apart) and the process's peak resident memory (getrusage ru_maxrss).

Sizes: full = the quickstart as shipped (3 rounds, 256 seed prompts, 50 eval prompts per bucket);
--quick = 2 rounds, 64 seed prompts, 10 eval prompts per bucket (same model and warm start);
--tiny = the test size (bench.common.TINY_OVERRIDES, 2 rounds). The last line is JSON.
"""

import argparse
import collections
import json
import os
import resource
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
from jax import monitoring  # noqa: E402

from bench import common  # noqa: E402

# Event names of the installed jax (jax/_src/dispatch.py).
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"

# (report name, summary stat key) of the phases timed inside `round/seconds`, then outside it.
IN_ROUND = (
  ("sampling", "time/sample"),
  ("scoring", "time/score"),
  ("creator", "time/creator"),
  ("pool_io", "time/pool_io"),
  ("training", "time/train"),
)
AFTER_ROUND = (("eval", "time/eval"), ("checkpoint", "time/checkpoint"))
PHASES = tuple(name for name, _ in IN_ROUND + AFTER_ROUND) + ("other",)

SIZES = {
  "full": {},
  "quick": {"loop.rounds": 2, "pool.num_seeds": 64, "eval.per_bucket": 10},
  "tiny": {"loop.rounds": 2, **common.TINY_OVERRIDES},
}


class CompileLog:
  """Counts and times XLA compilations (and tracing/lowering) through jax.monitoring listeners."""

  def __init__(self):
    self.active = False
    self.compiles: list[tuple[str, float]] = []  # (function name, backend compile seconds)
    self.seconds = collections.defaultdict(float)
    monitoring.register_event_duration_secs_listener(self._on_duration)

  def _on_duration(self, event: str, duration: float, **kwargs) -> None:
    if not self.active:
      return
    if event == BACKEND_COMPILE_EVENT:
      self.compiles.append((str(kwargs.get("fun_name", "?")), duration))
    if event in (BACKEND_COMPILE_EVENT, TRACE_EVENT, LOWER_EVENT):
      self.seconds[event] += duration

  def by_function(self) -> list[tuple[str, int, float]]:
    """(name, compiles, seconds), most compile time first."""
    counts, seconds = collections.Counter(), collections.defaultdict(float)
    for name, s in self.compiles:
      counts[name] += 1
      seconds[name] += s
    return sorted(((n, counts[n], seconds[n]) for n in counts), key=lambda t: -t[2])


def phase_seconds(stats: dict) -> dict[str, float]:
  """Seconds per phase of one round (stats of summary["rounds"][i]); missing phases are 0."""
  out = {name: float(stats.get(key, 0.0)) for name, key in IN_ROUND + AFTER_ROUND}
  inside = sum(out[name] for name, _ in IN_ROUND)
  out["other"] = max(float(stats["round/seconds"]) - inside, 0.0)
  return out


def shares(seconds: dict[str, float]) -> dict[str, float]:
  total = sum(seconds.values())
  return {name: seconds[name] / total for name in PHASES}


def profile(rounds: list[dict]) -> dict:
  """Per-phase seconds, shares, sampled tokens and sampler seconds summed over `rounds` (summary entries)."""
  seconds = collections.defaultdict(float)
  tokens = 0.0
  for r in rounds:
    for name, s in phase_seconds(r["stats"]).items():
      seconds[name] += s
    tokens += float(r["stats"].get("round/sampled_tokens", 0.0))
  total = sum(seconds.values())
  return {
    "rounds": len(rounds),
    "seconds": dict(seconds),
    "total_s": total,
    "round_s": total / max(len(rounds), 1),
    "shares": shares(seconds),
    "sampled_tokens": tokens,
    "sampler_tok_s": tokens / max(seconds["sampling"], 1e-9),
  }


def main():
  parser = argparse.ArgumentParser()
  size = parser.add_mutually_exclusive_group()
  size.add_argument("--quick", action="store_true", help="2 rounds, 64 seed prompts, 10 eval prompts/bucket")
  size.add_argument("--tiny", action="store_true", help="test size (a few seconds of rounds)")
  parser.add_argument("--workdir", default="", help="run here and keep it (default: a temporary dir)")
  args = parser.parse_args()
  size_name = "tiny" if args.tiny else "quick" if args.quick else "full"
  config = common.quickstart_config(SIZES[size_name])

  log = CompileLog()
  rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  with tempfile.TemporaryDirectory(prefix="eva_round_profile_") as tmp:
    workdir = args.workdir or tmp
    log.active = True
    start = time.perf_counter()
    summary = common.run_quickstart(config, workdir)
    run_s = time.perf_counter() - start
    log.active = False
  peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux

  rounds = [r for r in summary["rounds"] if r["round"] != 0]
  overall = profile(rounds)
  steady = profile(rounds[1:]) if len(rounds) > 1 else None

  print(
    f"quickstart ({size_name}): {config.loop.rounds} rounds, pool {config.pool.num_seeds} seeds, "
    f"n={config.loop.num_samples}, warm start {config.loop.warmstart_steps} steps; "
    f"{jax.device_count()} {jax.default_backend()} device(s); run {run_s:.1f}s"
  )
  header = (
    f"{'round':>7} {'round s':>8} " + " ".join(f"{p:>10}" for p in PHASES) + f" {'pairs':>6} {'tok/s':>7}"
  )
  print(header)
  for r in rounds:
    seconds = phase_seconds(r["stats"])
    share = shares(seconds)
    print(
      f"{r['round']:>7} {sum(seconds.values()):>8.2f} "
      + " ".join(f"{100 * share[p]:>9.1f}%" for p in PHASES)
      + f" {int(r['stats'].get('round/train_pairs', 0)):>6} {r['stats'].get('round/sampler_tokens_per_s', 0):>7.0f}"
    )
  for label, prof in (("overall", overall), ("steady", steady)):
    if prof is None:
      continue
    print(
      f"{label:>7} {prof['round_s']:>8.2f} "
      + " ".join(f"{100 * prof['shares'][p]:>9.1f}%" for p in PHASES)
      + f" {'':>6} {prof['sampler_tok_s']:>7.0f}"
    )
  creator_io = overall["shares"]["creator"] + overall["shares"]["pool_io"]
  verdict = "PASS" if creator_io < 0.05 else "FAIL"
  print(f"creator + pool IO: {100 * creator_io:.2f}% of a round (target < 5%): {verdict}")

  compile_s = log.seconds[BACKEND_COMPILE_EVENT]
  trace_s, lower_s = log.seconds[TRACE_EVENT], log.seconds[LOWER_EVENT]
  functions = log.by_function()
  print(
    f"compilations over the whole run: {len(log.compiles)} ({len(functions)} distinct functions), "
    f"backend compile {compile_s:.1f}s, tracing {trace_s:.1f}s, lowering {lower_s:.1f}s "
    f"= {100 * (compile_s + trace_s + lower_s) / run_s:.0f}% of the run's {run_s:.1f}s"
  )
  for name, count, seconds in functions[:8]:
    print(f"  {seconds:>6.2f}s {count:>3}x {name}")
  prelude_s = summary.get("seconds", run_s) - overall["total_s"]
  print(f"set-up + warm start + round-0 eval: {prelude_s:.1f}s")
  print(f"peak host memory (ru_maxrss): {peak_rss:.0f} MiB ({rss_before:.0f} MiB after imports)")

  figures = {
    "round_s": overall["round_s"],
    **{f"share_{p}": overall["shares"][p] for p in PHASES},
    "creator_pool_io_share": creator_io,
    "creator_pool_io_under_5pct": int(creator_io < 0.05),
    "sampler_tok_s": overall["sampler_tok_s"],
    "compiles": len(log.compiles),
    "compiled_functions": len(functions),
    "compile_s": compile_s,
    "trace_s": trace_s,
    "lower_s": lower_s,
    "peak_rss_mib": peak_rss,
    "rss_after_imports_mib": rss_before,
    "run_s": run_s,
    "prelude_s": prelude_s,
    "rounds": overall["rounds"],
    "train_pairs": sum(int(r["stats"].get("round/train_pairs", 0)) for r in rounds),
    "sampled_tokens": overall["sampled_tokens"],
  }
  if steady is not None:
    figures["steady_round_s"] = steady["round_s"]
    figures["steady_sampler_tok_s"] = steady["sampler_tok_s"]
    figures |= {f"steady_share_{p}": steady["shares"][p] for p in PHASES}
  print(json.dumps(figures))


if __name__ == "__main__":
  main()
