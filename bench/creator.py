"""Host-side creator cost: informativeness, selection, evolution + filters, and the TFDS pool write/read.

    .venv/bin/python -m bench.creator [--quick]

For a pool of N distinct prompts of the embedded task (N = 10k and 100k; --quick: 2k and 10k)
with a [N, 6] reward matrix (5% of the responses dropped as NaN), paper settings: gap, importance-
weighted 25%, 4 chained evolutions by the task evolver, all filters on (dedup against the pool,
token length with the embedded tokenizer): the quickstart's `config.creator`. Figures per size:

  write_read_s   the N-prompt generation written as TFDS (array_record) and read back (the target:
                 under 30 s at 100k on this machine)
  step_s         `next_generation`: statistics, scores, selection, evolution, filters
  creator_s_per_1k  (step + write and read of the new generation, about 2N prompts) per 1k pool prompts

Baselines in the same run: reading the generation example by example through plain TFDS
(`as_data_source`, what any TFDS user does) against our batched parse, and the same records as
JSON lines (write + read) as the floor of any file format. The last line is JSON: prompts,
write_read_s, creator_s_per_1k (at the largest size) and per-size figures.
"""

import argparse
import contextlib
import dataclasses
import io
import json
import os
import pathlib
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import logging  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from configs import quickstart  # noqa: E402
from eva_jax.creator import config as creator_config  # noqa: E402
from eva_jax.creator import generation  # noqa: E402
from eva_jax.creator import informativeness  # noqa: E402
from eva_jax.creator import pool as pool_lib  # noqa: E402
from eva_jax.creator import records as records_lib  # noqa: E402
from eva_jax.creator import selection  # noqa: E402
from eva_jax.creator.evolvers import factory  # noqa: E402
from eva_jax.models import tokenizer as tokenizer_lib  # noqa: E402
from eva_jax.tasks import addition  # noqa: E402

# The quickstart's creator: paper settings with the task evolver.
CONFIG = creator_config.parse(quickstart.get_config())


def distinct_prompts(num: int, seed: int = 0) -> list[str]:
  rng = np.random.default_rng(seed)
  seen: dict[str, None] = {}
  while len(seen) < num:
    seen[addition.random_problem(rng, max_digits=4, num_operands=int(rng.integers(2, 4))).prompt] = None
  return list(seen)


def _clock(fn):
  start = time.perf_counter()
  out = fn()
  return out, time.perf_counter() - start


def jsonl_round_trip(records, path: pathlib.Path) -> float:
  start = time.perf_counter()
  with path.open("w") as f:
    for r in records:
      f.write(json.dumps(dataclasses.asdict(r)) + "\n")
  with path.open() as f:
    back = [records_lib.PromptRecord(**json.loads(line)) for line in f]
  assert len(back) == len(records)
  return time.perf_counter() - start


def measure(num: int, workdir: pathlib.Path, tokenizer) -> dict:
  rng = np.random.default_rng(num)
  records = records_lib.seed_records(distinct_prompts(num))
  rewards = rng.random((num, 6))
  rewards[rng.random(rewards.shape) < 0.05] = np.nan
  scored, info_s = _clock(lambda: records_lib.with_stats(records, rewards, None, CONFIG.info_metric))
  weights, normalise_s = _clock(lambda: informativeness.normalise(records_lib.info_scores(scored)))
  k = selection.num_selected(int(np.isfinite(weights).sum()), CONFIG.sample_frac)
  _, select_s = _clock(lambda: selection.select(weights, k, CONFIG.selection, np.random.default_rng(0)))

  pool = pool_lib.Pool(workdir / f"pool_{num}")
  _, write_s = _clock(lambda: pool.write_generation(0, scored))
  back, read_s = _clock(lambda: pool.read_generation(0))
  assert [r.prompt_id for r in back] == [r.prompt_id for r in scored]
  source = pool.data_source(0)
  _, tfds_read_s = _clock(lambda: [source[i] for i in range(len(source))])
  jsonl_s = jsonl_round_trip(scored, workdir / f"pool_{num}.jsonl")

  step, step_s = _clock(
    lambda: generation.next_generation(
      back,
      rewards,
      None,
      config=CONFIG,
      evolver=factory.build_evolver(CONFIG),
      generation=1,
      rng=np.random.default_rng(1),
      count_tokens=lambda t: len(tokenizer.encode(t)),
    )
  )
  _, next_write_s = _clock(lambda: pool.write_generation(1, step.records))
  _, next_read_s = _clock(lambda: pool.read_generation(1))
  return {
    "prompts": num,
    "info_s": info_s + normalise_s,
    "select_s": select_s,
    "step_s": step_s,
    "children": len(step.children),
    "write_s": write_s,
    "read_s": read_s,
    "write_read_s": write_s + read_s,
    "tfds_read_s": tfds_read_s,
    "read_speedup": tfds_read_s / read_s,
    "jsonl_write_read_s": jsonl_s,
    "next_prompts": len(step.records),
    "next_write_read_s": next_write_s + next_read_s,
    "creator_s_per_1k": (step_s + next_write_s + next_read_s) / num * 1000,
  }


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="2k and 10k prompts instead of 10k and 100k")
  parser.add_argument("--tiny", action="store_true", help="test size: 1k prompts")
  args = parser.parse_args()
  sizes = (1_000,) if args.tiny else (2_000, 10_000) if args.quick else (10_000, 100_000)
  logging.set_verbosity(logging.ERROR)  # TFDS warns about every fresh dataset folder
  tfds.disable_progress_bar()
  tokenizer = tokenizer_lib.load_tokenizer("embedded")
  # TFDS prints two lines per dataset it builds; keep the table readable.
  with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
    measure(500, pathlib.Path(tmp), tokenizer)  # warm-up: TensorFlow/TFDS imports and first-call costs
    rows = [measure(num, pathlib.Path(tmp), tokenizer) for num in sizes]
  print(
    f"{'prompts':>8} {'info':>6} {'select':>6} {'step':>6} {'children':>8} {'write':>6} {'read':>6} "
    f"{'tfds read':>9} {'jsonl w+r':>9} {'next gen':>8} {'w+r next':>8} {'s/1k':>6}"
  )
  for r in rows:
    print(
      f"{r['prompts']:>8,} {r['info_s']:>6.2f} {r['select_s']:>6.3f} {r['step_s']:>6.2f} {r['children']:>8,} "
      f"{r['write_s']:>6.2f} {r['read_s']:>6.2f} {r['tfds_read_s']:>9.2f} {r['jsonl_write_read_s']:>9.2f} "
      f"{r['next_prompts']:>8,} {r['next_write_read_s']:>8.2f} {r['creator_s_per_1k']:>6.3f}"
    )
  largest = rows[-1]
  print(
    f"{largest['prompts']:,} prompts written and read back in {largest['write_read_s']:.1f}s (target < 30s); "
    f"batched read {largest['read_speedup']:.1f}x faster than per-example TFDS decoding"
  )
  figures = {"prompts": largest["prompts"], "write_read_s": largest["write_read_s"]}
  figures["creator_s_per_1k"] = largest["creator_s_per_1k"]
  for r in rows:
    figures.update({f"{k}_{r['prompts']}": v for k, v in r.items() if k != "prompts"})
  print(json.dumps(figures))


if __name__ == "__main__":
  main()
