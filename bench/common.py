"""Shared benchmark yardsticks: a timing helper and this machine's matmul peak, measured in-process."""

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
