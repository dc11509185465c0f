"""Held-out evaluation on a task: greedy answers, exact match and reward per difficulty bucket."""

from collections import defaultdict

import jax
import numpy as np

from eva_jax.sampling import sampler


def evaluate(solver, task, prompts, loop, params=None) -> dict:
  """{bucket: {"n", "exact", "reward"}} plus "all", for greedy answers to `prompts`."""
  config = sampler.SamplingConfig(
    num_samples=1,
    max_new_tokens=loop.max_new_tokens,
    temperature=0.0,
    batch_size=loop.sample_batch_size,
    max_cache_length=loop.max_cache_length,
  )
  params = solver.params if params is None else params
  samples = sampler.sample(
    solver.model, params, solver.tokenizer, prompts, config, jax.random.key(0), mesh=solver.mesh
  )
  buckets = defaultdict(list)
  for prompt, text in zip(prompts, samples.text):
    row = (float(text.strip() == task.reference(prompt)), task.reward(prompt, text))
    buckets[task.difficulty(prompt)].append(row)
    buckets["all"].append(row)
  return {
    bucket: {
      "n": len(rows),
      "exact": float(np.mean([r[0] for r in rows])),
      "reward": float(np.mean([r[1] for r in rows])),
    }
    for bucket, rows in buckets.items()
  }


def flat(evaluation: dict) -> dict[str, float]:
  return {f"{k}/{bucket}": v[k] for bucket, v in evaluation.items() for k in ("exact", "reward")}


def round_line(round_index: int, generation: int, stats: dict, evaluation: dict) -> str:
  buckets = " ".join(f"{b}:{v['exact']:.2f}" for b, v in evaluation.items() if b != "all")
  overall = evaluation.get("all", {})
  return (
    f"round {round_index}: pool gen {generation} ({stats.get('round/pool_size', 0)} prompts), "
    f"{stats.get('round/train_pairs', 0)} pairs, reward {stats.get('round/reward_mean', float('nan')):.3f}; "
    f"held-out exact {overall.get('exact', float('nan')):.3f} reward {overall.get('reward', float('nan')):.3f} "
    f"[{buckets}] ({stats.get('round/seconds', 0):.0f}s)"
  )
