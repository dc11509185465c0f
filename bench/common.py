"""Shared benchmark yardsticks: a timing helper and this machine's matmul peak, measured in-process."""

import json
import time

import jax
import jax.numpy as jnp


def timed(fn, repeats: int) -> float:
  """Mean seconds per call of `fn` over `repeats` calls, after one warm-up (compile) call."""
  fn()
  start = time.perf_counter()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - start) / repeats


def matmul_peak_gflops(size: int = 2048, dtype=jnp.float32) -> float:
  """This machine's matmul rate in `dtype` (the MFU yardstick), measured now."""
  a = jax.random.normal(jax.random.key(0), (size, size), dtype)
  matmul = jax.jit(lambda x: x @ x)
  seconds = timed(lambda: matmul(a).block_until_ready(), 3)
  return 2 * size**3 / seconds / 1e9


# --- Whole-run benchmarks (round_profile, curriculum_ablation): the quickstart through the public API.

# Test-sized quickstart: a 16-prompt pool, 4 samples per prompt, one eval prompt per bucket.
TINY_OVERRIDES = {  # from the shipped base (the quickstart's model.init), so no warm start
  # Graded reward, any spread makes a pair: the base answers the 16 easy seeds right, so the binary
  # reward would leave a round almost nothing to train on, and the contract needs training to run.
  "reward.task": "addition_lsb",
  "loop.min_chosen_reward": float("-inf"),
  "loop.num_samples": 4,
  "loop.sample_batch_size": 16,
  "pool.num_seeds": 16,
  "creator.num_evolutions": 2,
  "solver.batch_size": 8,
  "solver.epochs": 1,
  "eval.per_bucket": 1,
}


def quickstart_config(overrides: dict):
  """configs/quickstart.py with dotted-field `overrides` ({"loop.rounds": 1, ...})."""
  from configs import quickstart
  from eva_jax import config as config_lib

  return config_lib.override(quickstart.get_config(), dict(overrides))


def run_quickstart(config, workdir) -> dict:
  """Runs (or resumes) the eva run of `config` in `workdir` as `python -m eva_jax.main` would; the summary."""
  from absl import logging as absl_logging

  from eva_jax import config as config_lib
  from eva_jax.loop import runner

  absl_logging.set_verbosity(absl_logging.ERROR)  # orbax and TFDS log every file they write
  cfg = config_lib.parse(config, jax.device_count())
  return runner.run(cfg, workdir, config_lib.flatten(config))


def last_json(text: str) -> dict:
  """The JSON object on the last non-empty line of a benchmark's stdout (the benchmark contract)."""
  lines = [line for line in text.splitlines() if line.strip()]
  if not lines:
    raise ValueError("no output")
  return json.loads(lines[-1])
