"""Real-size programs compiled on fake CPU devices, held against the analytical memory plan.

    .venv/bin/python -m bench.scale_check [--quick] [--configs ...] [--models ...] [--devices 8]
        [--programs train,ref_logprobs,generate]
    XLA_FLAGS=--xla_force_host_platform_device_count=64 .venv/bin/python -m bench.scale_check --devices 64

For each config (default: configs/gemma2_9b_dpo.py and configs/gemma2_9b_rloo.py) and model
(default: the config's own gemma2_9b, plus gemma2_2b and gemma3_1b variants; `--quick`: gemma3_1b
only, DPO config only), on `--devices` fake CPU devices with the config's mesh rules and shape
(resolved to that many devices): compiles the DPO (or RLOO) step, the reference log-prob function
and the sampler's generate program (prefill + decode loop) at the config's batch, lengths, cache
and vocabulary (`eva_jax.scale.compile_check`), nothing allocated. Prints per program XLA's
per-device bytes (arguments, temporaries, outputs, live peak), FLOPs, collectives and the largest
buffer, next to the analytical plan (`--mode=plan`'s `memory_plan` for a `<devices>x80` topology)
for the two phases it estimates: "train step" vs the train step's live peak, "sampling" vs
generate's. A difference (plan - XLA) / XLA beyond +-25% is flagged. CPU buffer assignment is not TPU's (see
compile_check); the plan's phase peaks include the resident train state, as XLA's arguments do.

Then a roofline of each program on the chips of `scale.roofline.CHIPS` (v4, v5e, v5p, v6e,
H100, H200) from the same per-device counts: the time a step would take at best, whether compute,
HBM or the interconnect sets it, and the MFU that leaves (caveats in that module: a generate
program's counts are its prefill plus one decode step).

The last line is JSON: `programs_compiled`, `plan_vs_xla_max_rel_diff` (over every phase and
config), `full_vocab_logits_arrays` (must be 0), `compile_seconds` (sum), and per
`<config>.<model>.<program>`: `peak_bytes`, `temp_bytes`, `gflops`, `compile_s`, collective counts,
and `<chip>.step_s`, `<chip>.mfu`, `<chip>.bound`.
"""

import argparse
import importlib
import json
import os
import pathlib
import sys

if "jax" not in sys.modules and "device_count" not in os.environ.get("XLA_FLAGS", ""):
  # fake devices must be requested before jax starts (set XLA_FLAGS yourself for more than 8)
  os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
if "concurrency_optimized_scheduler" not in os.environ.get("XLA_FLAGS", ""):
  # XLA:CPU's default scheduler maximises concurrency: it starts every FSDP weight gather at once and
  # holds all gathered weights (3-4x the plan at 16-64 devices). The memory-minimising one orders
  # them the way an accelerator's memory-aware scheduler does.
  os.environ["XLA_FLAGS"] += " --xla_cpu_enable_concurrency_optimized_scheduler=false"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402

from eva_jax import config_fields as fields  # noqa: E402
from eva_jax.parallel import mesh as mesh_lib  # noqa: E402
from eva_jax.scale import compile_check  # noqa: E402
from eva_jax.scale import memory_plan  # noqa: E402
from eva_jax.scale import roofline  # noqa: E402
from eva_jax.solver import config as solver_config  # noqa: E402

GIB = 1 << 30
FLAG_AT = 0.25


def sizes_of(config) -> compile_check.Sizes:
  solver = solver_config.parse(config)
  return compile_check.Sizes(
    pairs=solver.batch_size,
    micro_batches=solver.micro_batches,
    prompt_len=solver.max_prompt_len,
    response_len=solver.max_response_len,
    rloo_k=solver.rloo.k,
    sample_prompts=fields.integer(config, "loop.sample_batch_size", low=1),
    num_samples=fields.integer(config, "loop.num_samples", low=1),
    cache_len=fields.integer(config, "loop.max_cache_length", low=2),
    new_tokens=fields.integer(config, "loop.max_new_tokens", low=1),
    chunk=fields.integer(config, "model.logprob_chunk", low=1),
  )


def check(
  config_path: str, model: str, devices: int, programs=("train", "ref_logprobs", "generate")
) -> tuple[list[dict], float]:
  """Rows for one (config, model) and the largest plan-vs-XLA relative difference."""
  module = pathlib.Path(config_path).with_suffix("").as_posix().replace("/", ".")
  config = importlib.import_module(module).get_config()
  config.model.name = model
  online = config.solver.loss == "rloo"
  sizes = sizes_of(config)
  shape = dict(config.mesh.shape)
  mesh = mesh_lib.make_mesh(shape, devices=jax.devices()[:devices])
  rules = tuple(tuple(rule) for rule in config.mesh.rules)
  opt_cfg = solver_config.parse(config).optimizer
  train = "rloo_step" if online else "dpo_step"
  names = tuple(train if name == "train" else name for name in programs)
  programs = compile_check.compile_run(model, config.model.param_dtype, mesh, rules, sizes, opt_cfg, names)
  plan = memory_plan.plan_for_config(config, f"{devices}x80").phase_peaks()
  against = {train: plan["train step"], "generate": plan["sampling"]}
  rows, worst = [], 0.0
  for p in programs:
    planned = against.get(p.name)
    diff = (planned - p.peak_bytes) / p.peak_bytes if planned and p.peak_bytes else None
    worst = max(worst, abs(diff or 0.0))
    rows.append(
      {
        "config": os.path.basename(config_path).removesuffix(".py"),
        "model": model,
        "mesh": dict(mesh.shape),
        "program": p.name,
        "compile_s": p.compile_s,
        "argument_bytes": p.argument_bytes,
        "temp_bytes": p.temp_bytes,
        "output_bytes": p.output_bytes,
        "peak_bytes": p.peak_bytes,
        "plan_bytes": planned,
        "plan_rel_diff": diff,
        "gflops": p.flops / 1e9,
        "bytes_accessed": p.bytes_accessed,
        "collectives": {k: v for k, v in p.collectives_run.items() if v["count"]},
        "loops": [
          {
            "trips": loop.trip_count,
            "collectives": {k: v for k, v in loop.collectives.items() if v["count"]},
            "weight_gathers": loop.weight_gathers,
          }
          for loop in p.loops
        ],
        "fsdp_gather_bytes": p.fsdp_gather_bytes,
        "full_vocab_arrays": p.full_vocab_arrays,
        "largest_buffer": p.largest_buffer[1],
        "largest_buffer_bytes": p.largest_buffer[0],
      }
    )
  return rows, worst


def _print(row: dict) -> None:
  plan = (
    f"plan {row['plan_bytes'] / GIB:7.2f} GiB ({100 * row['plan_rel_diff']:+.0f}%{' FLAG' if abs(row['plan_rel_diff']) > FLAG_AT else ''})"
    if row["plan_bytes"]
    else "plan      -"
  )
  collectives = ", ".join(
    f"{k} {v['count']}x {v['bytes'] / GIB:.2f} GiB" for k, v in row["collectives"].items()
  )
  print(
    f"{row['config']:14s} {row['model']:10s} {row['program']:12s} peak {row['peak_bytes'] / GIB:7.2f} GiB "
    f"(args {row['argument_bytes'] / GIB:.2f}, temp {row['temp_bytes'] / GIB:.2f})  {plan}  "
    f"{row['gflops']:10.0f} GFLOP  compile {row['compile_s']:5.0f} s  largest {row['largest_buffer']}  "
    f"full-vocab arrays {row['full_vocab_arrays']}  [{collectives}]",
    flush=True,
  )


def decode_step(row: dict) -> dict | None:
  """The generate program's decode loop: collective bytes per step (one token for every row)."""
  loops = [loop for loop in row["loops"] if loop["trips"] is None]
  if row["program"] != "generate" or not loops:
    return None
  step = loops[0]["collectives"]
  gathered = step.get("all-gather", {}).get("bytes", 0)
  return {
    "bytes": sum(v["bytes"] for v in step.values()),
    "all_gather_bytes": gathered,
    # XLA may hoist FSDP's weight gathers out of the loop (loop-invariant): then the gathered
    # weights stay live through the loop and no weight bytes move per step.
    "weights_gathered_per_step": loops[0]["weight_gathers"] > 0,
    "fsdp_gather_bytes": row["fsdp_gather_bytes"],
  }


def _print_decode(rows: list[dict]) -> None:
  print("\ndecode loop per step (one token for each sampled row), per device:")
  for row in rows:
    step = decode_step(row)
    if step:
      where = "in the loop" if step["weights_gathered_per_step"] else "hoisted out of the loop by XLA"
      print(
        f"{row['config']:14s} {row['model']:10s} collectives {step['bytes'] / 2**20:8.1f} MiB/step "
        f"(all-gather {step['all_gather_bytes'] / 2**20:.1f}); fsdp weight gather "
        f"{step['fsdp_gather_bytes'] / 2**20:.1f} MiB per pass, {where}",
        flush=True,
      )


def roofline_rows(row: dict) -> dict[str, roofline.Estimate]:
  return {
    chip: roofline.estimate(row["gflops"] * 1e9, row["bytes_accessed"], row["collectives"], chip)
    for chip in roofline.CHIPS
  }


def _print_roofline(rows: list[dict]) -> None:
  print("\nroofline per device (lower bound of a step; bound = what sets it; MFU = compute / step):")
  print(f"{'config':14s} {'model':10s} {'program':12s} " + " ".join(f"{c:>22s}" for c in roofline.CHIPS))
  for row in rows:
    cells = [
      f"{1e3 * e.seconds:8.1f} ms {e.bound[:3]} {100 * e.mfu:3.0f}%" for e in roofline_rows(row).values()
    ]
    print(
      f"{row['config']:14s} {row['model']:10s} {row['program']:12s} " + " ".join(f"{c:>22s}" for c in cells)
    )


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--configs", default="configs/gemma2_9b_dpo.py,configs/gemma2_9b_rloo.py")
  parser.add_argument("--models", default="gemma2_9b,gemma2_2b,gemma3_1b")
  parser.add_argument("--devices", type=int, default=8)
  parser.add_argument("--programs", default="train,ref_logprobs,generate", help="train = the config's step")
  parser.add_argument("--quick", action="store_true", help="gemma3_1b with the DPO config only")
  args = parser.parse_args()
  configs = ["configs/gemma2_9b_dpo.py"] if args.quick else args.configs.split(",")
  models = ["gemma3_1b"] if args.quick else args.models.split(",")
  if jax.device_count() < args.devices:
    sys.exit(
      f"bench.scale_check: {jax.device_count()} devices, --devices {args.devices}; set XLA_FLAGS first"
    )
  rows, worst = [], 0.0
  for config_path in configs:
    for model in models:
      found, diff = check(config_path, model, args.devices, tuple(args.programs.split(",")))
      for row in found:
        _print(row)
      rows += found
      worst = max(worst, diff)
  _print_decode(rows)
  _print_roofline(rows)
  figures = {
    "programs_compiled": len(rows),
    "plan_vs_xla_max_rel_diff": worst,
    "full_vocab_logits_arrays": sum(r["full_vocab_arrays"] for r in rows),
    "compile_seconds": sum(r["compile_s"] for r in rows),
  }
  for r in rows:
    key = f"{r['config']}.{r['model']}.{r['program']}"
    figures |= {
      f"{key}.peak_bytes": r["peak_bytes"],
      f"{key}.temp_bytes": r["temp_bytes"],
      f"{key}.plan_rel_diff": r["plan_rel_diff"],
      f"{key}.gflops": r["gflops"],
      f"{key}.compile_s": r["compile_s"],
      **{f"{key}.{k}": v["count"] for k, v in r["collectives"].items()},
    }
    step = decode_step(r)
    if step:
      figures |= {
        f"{key}.decode_step_collective_bytes": step["bytes"],
        f"{key}.decode_step_weights_gathered": step["weights_gathered_per_step"],
        f"{key}.fsdp_gather_bytes": step["fsdp_gather_bytes"],
      }
    for chip, e in roofline_rows(r).items():
      figures |= {
        f"{key}.{chip}.step_s": e.seconds,
        f"{key}.{chip}.mfu": e.mfu,
        f"{key}.{chip}.bound": e.bound,
      }
  print(json.dumps(figures))


if __name__ == "__main__":
  main()
