"""Does the mechanism eva relies on exist? Training on the model's own correct answers at the frontier.

    .venv/bin/python -m bench.frontier [--quick] [--seeds N]

Before any curriculum: from the shipped base (eva_jax/models/base_model.py), sample 6 responses
(temperature 0.7, top-p 0.9, the quickstart's sampling) to fresh training prompts, keep what the
task's reward says, train once, and measure greedy held-out exact match per bucket. Arms:

  rft_frontier  SFT on the model's own exact answers to fresh frontier-bucket prompts (3+2 digits)
  dpo_frontier  DPO + NLL (the quickstart's solver) on correct-vs-wrong pairs of frontier prompts
  rft_seed      the same SFT on seed-difficulty prompts (what static prompts offer)
  dpo_seed      the same DPO on seed-difficulty prompts

If the frontier arms do not raise frontier exact match, no curriculum can; if the seed arms do not,
static prompts cannot. Each seed re-draws the training prompts and samples; the base is fixed.
Last line: JSON with `base_frontier_exact` and `<arm>_frontier_exact` / `<arm>_easy_exact` (means
over seeds) and the per-seed lists.
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from eva_jax import config as config_lib  # noqa: E402
from eva_jax.jobs import train_base_model  # noqa: E402
from eva_jax.loop import offline  # noqa: E402
from eva_jax.loop import pairs as pairs_lib  # noqa: E402
from eva_jax.loop import responses as responses_lib  # noqa: E402
from eva_jax.loop import setup  # noqa: E402
from eva_jax.loop import training  # noqa: E402
from eva_jax.models import base_model  # noqa: E402
from eva_jax.rewards import factory as reward_factory  # noqa: E402
from eva_jax.tasks import addition  # noqa: E402

ARMS = ("rft_frontier", "dpo_frontier", "rft_seed", "dpo_seed")
SIZES = {
  "full": {"prompts": 1024, "per_bucket": 200, "seeds": 2},
  "quick": {"prompts": 192, "per_bucket": 50, "seeds": 1},
}


def training_prompts(kind: str, num: int, seed: int, reversed_operands: bool) -> list[addition.Problem]:
  """`num` fresh problems: seed difficulty, or the frontier bucket's (a 3-digit and a 2-digit operand)."""
  if kind == "seed":
    return addition.seed_problems(num, 10_000 + seed, reversed_operands=reversed_operands)
  rng = np.random.default_rng(10_000 + seed)
  frontier = [int(d) for d in addition.FRONTIER_BUCKET.split("+")]
  out = []
  for _ in range(num):
    digits = list(frontier)
    rng.shuffle(digits)
    operands = tuple(addition.random_operand(rng, d) for d in digits)
    template = int(rng.integers(len(addition.PROMPT_TEMPLATES)))
    out.append(addition.Problem(operands, template, reversed_operands))
  return out


def _sample(solver, cfg, reward_source, problems, seed) -> responses_lib.ScoredResponses:
  prompts = [p.prompt for p in problems]
  config = offline.sampling_config(cfg.loop)
  return responses_lib.sample_and_score(
    solver.model,
    solver.params,
    solver.tokenizer,
    prompts,
    config,
    jax.random.key(seed),
    reward_source,
    "fail",
  )


def train_arm(arm: str, solver, cfg, scored: responses_lib.ScoredResponses, seed: int):
  """(params after one training phase of `arm` on the scored responses, examples trained on)."""
  if arm.startswith("rft"):
    rows, cols = np.nonzero(scored.rewards == 1.0)
    if not len(rows):
      return solver.params, 0
    prompts = [scored.prompts[r] for r in rows]
    answers = [scored.texts[r][c] for r, c in zip(rows, cols)]
    params, _ = training.sft(
      solver.model,
      solver.params,
      solver.tokenizer,
      prompts,
      answers,
      num_steps=max(1, 2 * len(prompts) // cfg.solver.batch_size),  # two epochs, as DPO
      batch_size=cfg.solver.batch_size,
      learning_rate=cfg.solver.optimizer.learning_rate,
      mesh=solver.mesh,
      param_shardings=solver.shardings,
      seed=seed,
    )
    return params, len(prompts)
  pairs = pairs_lib.best_vs_worst(scored.rewards, min_chosen=1.0)  # correct vs wrong
  if not len(pairs):
    return solver.params, 0
  params, _ = training.preference_epochs(
    solver.model,
    solver.params,
    [scored.prompt_ids[p] for p in pairs.prompt],
    [scored.response_ids[p][c] for p, c in zip(pairs.prompt, pairs.chosen)],
    [scored.response_ids[p][r] for p, r in zip(pairs.prompt, pairs.rejected)],
    solver=cfg.solver,
    mesh=solver.mesh,
    param_shardings=solver.shardings,
    seed=seed,
  )
  return params, len(pairs)


def _value(text: str):
  """An override's value: a number where it parses as one, else the string."""
  for kind in (int, float):
    try:
      return kind(text)
    except ValueError:
      pass
  return text


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="192 prompts, 50 eval prompts per bucket, 1 seed")
  parser.add_argument("--seeds", type=int, default=0)
  parser.add_argument("--prompts", type=int, default=0, help="training prompts per kind (default: by size)")
  parser.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {','.join(ARMS)}")
  parser.add_argument(
    "--set",
    action="append",
    default=[],
    help="quickstart overrides, e.g. solver.optimizer.learning_rate=5e-4",
  )
  args = parser.parse_args()
  size = dict(SIZES["quick" if args.quick else "full"])
  size["prompts"] = args.prompts or size["prompts"]
  arms = [a for a in args.arms.split(",") if a]
  if unknown := [a for a in arms if a not in ARMS]:
    parser.error(f"unknown arms {unknown}; known: {list(ARMS)}")
  overrides = {k: _value(v) for k, _, v in (item.partition("=") for item in args.set)}
  seeds = args.seeds or size["seeds"]
  cfg = config_lib.parse(common.quickstart_config(overrides), jax.device_count())
  solver = setup.build(cfg)
  reward_source = reward_factory.make_reward_source(cfg.reward, mesh=solver.mesh)
  start = time.perf_counter()
  reversed_operands = base_model.load_record()["recipe"]["reversed_operands"]  # the base's prompt format
  table = lambda params: train_base_model.frontier_table(
    solver.model, params, per_bucket=size["per_bucket"], num_samples=0, reversed_operands=reversed_operands
  )
  easy = lambda t: min(t[b]["exact"] for b in addition.EASY_BUCKETS)
  base = table(solver.params)
  frontier = addition.FRONTIER_BUCKET
  results = {arm: [] for arm in arms}
  print(
    f"base: {frontier} exact {base[frontier]['exact']:.3f}, easy (worst of {addition.EASY_BUCKETS}) {easy(base):.3f}"
  )
  for seed in range(seeds):
    for kind in (k for k in ("frontier", "seed") if any(a.endswith(k) for a in arms)):
      problems = training_prompts(kind, size["prompts"], seed, reversed_operands)
      scored = _sample(solver, cfg, reward_source, problems, seed)
      rewards = scored.rewards
      print(
        f"seed {seed}, {kind} prompts: pass@{cfg.loop.num_samples} {(rewards == 1).any(1).mean():.2f}, "
        f"mean exact {(rewards == 1).mean():.2f}, with a spread {(np.ptp(rewards, 1) > 0).mean():.2f}",
        flush=True,
      )
      for arm in (a for a in arms if a.endswith(kind)):
        params, used = train_arm(arm, solver, cfg, scored, seed)
        after = table(params)
        results[arm].append(
          {"frontier": after[frontier]["exact"], "easy": easy(after), "examples": used, "table": after}
        )
        print(
          f"  {arm}: {used} examples -> {frontier} exact {after[frontier]['exact']:.3f} "
          f"({after[frontier]['exact'] - base[frontier]['exact']:+.3f}), easy {easy(after):.3f}",
          flush=True,
        )
  buckets = list(base)
  print(f"\ngreedy held-out exact match, {size['per_bucket']} prompts per bucket, mean over {seeds} seed(s)")
  print(f"{'arm':>13} " + " ".join(f"{b:>6}" for b in buckets))
  print(f"{'base':>13} " + " ".join(f"{base[b]['exact']:6.3f}" for b in buckets))
  for arm in arms:
    print(
      f"{arm:>13} "
      + " ".join(f"{np.mean([r['table'][b]['exact'] for r in results[arm]]):6.3f}" for b in buckets)
    )
  figures = {"seeds": seeds, "base_frontier_exact": base[frontier]["exact"], "base_easy_exact": easy(base)}
  for arm in arms:
    figures[f"{arm}_frontier_exact"] = float(np.mean([r["frontier"] for r in results[arm]]))
    figures[f"{arm}_easy_exact"] = float(np.mean([r["easy"] for r in results[arm]]))
    figures[f"{arm}_frontier_exact_per_seed"] = [r["frontier"] for r in results[arm]]
    figures[f"{arm}_examples"] = float(np.mean([r["examples"] for r in results[arm]]))
  figures["wall_s"] = time.perf_counter() - start
  print(json.dumps(figures))


if __name__ == "__main__":
  main()
