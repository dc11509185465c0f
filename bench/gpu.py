"""Accelerator throughput: DPO/RLOO steps and sampling in bfloat16, against the chip's published peak.

    JAX_PLATFORMS=cuda .venv/bin/python -m bench.gpu [--models small,gemma2_2b] [--tiny]

Run by `scripts/gpu_check.sh` on a machine with an NVIDIA GPU. For each model (random init,
bfloat16 weights and compute): the DPO step (8 pairs of 64 + 64 tokens) and the RLOO step (8
prompts x 4 samples) of `bench.train_step`, and our sampler at n=6 x 32 prompts (cache 256, 64 new
tokens) as in `bench.sampler`. MFU is model FLOPs (6 x params x tokens for a train step, 8 x for
RLOO, the decode FLOPs of `bench.sampler` per sampled token) over the chip's dense bfloat16 peak
from `PEAK_BF16_TFLOPS`, looked up by `jax.devices()[0].device_kind`; a chip not in the table (or
the CPU, `--tiny`) is measured instead (`jnp.dot` of 2048^3 bfloat16 matrices) and says so. The
batches are small for a 2B model on an H100: the figures say what eva's tiny and CPU-sized settings
get, not the chip's best. The last line is JSON: `device_kind`, `peak_bf16_tflops`, `peak_source`
and per model `<model>_dpo_tok_s`, `<model>_dpo_mfu`, `<model>_rloo_tok_s`, `<model>_rloo_mfu`,
`<model>_sample_tok_s`, `<model>_sample_mfu`.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from bench import sampler as sampler_bench  # noqa: E402
from bench import train_step  # noqa: E402
from eva_jax.models import architectures  # noqa: E402
from eva_jax.models import params as params_lib  # noqa: E402
from eva_jax.models import tokenizer as tokenizer_lib  # noqa: E402
from eva_jax.parallel import mesh as mesh_lib  # noqa: E402
from eva_jax.sampling import sampler  # noqa: E402
from eva_jax.solver import losses  # noqa: E402
from eva_jax.solver import rloo  # noqa: E402
from eva_jax.solver import steps  # noqa: E402
from eva_jax.tasks import addition  # noqa: E402

# Dense (no sparsity) bfloat16 tensor-core peaks from the vendors' data sheets, TFLOP/s per chip.
# Matched as substrings of `device_kind`, most specific first.
PEAK_BF16_TFLOPS = (
  ("H100 PCIe", 756.0),
  ("H100", 989.0),  # SXM ("NVIDIA H100 80GB HBM3")
  ("H200", 989.0),
  ("A100", 312.0),
  ("L4", 121.0),
)
SAMPLE_PROMPTS, SAMPLE_N = 32, 6


def chip_peak(device_kind: str) -> tuple[float, str]:
  """(dense bf16 TFLOP/s, "table" | "measured") for this chip."""
  for name, tflops in PEAK_BF16_TFLOPS:
    if name in device_kind:
      return tflops, "table"
  return common.matmul_peak_gflops(dtype=jnp.bfloat16) / 1e3, "measured"


def _sample_tok_s(model, mesh, repeats: int) -> float:
  tokenizer = tokenizer_lib.load_tokenizer("embedded")
  params = params_lib.init_params(model, jax.random.key(0), params_lib.shardings_for(model, mesh))
  rng = np.random.default_rng(0)
  prompts = [addition.random_problem(rng).prompt for _ in range(SAMPLE_PROMPTS)]
  config = sampler.SamplingConfig(
    num_samples=SAMPLE_N,
    max_new_tokens=sampler_bench.NEW_TOKENS,
    temperature=0.7,
    top_p=0.9,
    batch_size=SAMPLE_PROMPTS,
    min_cache_length=sampler_bench.CACHE,
  )
  decoded = []

  def run():
    out = sampler.sample(model, params, tokenizer, prompts, config, jax.random.key(1), progress=False)
    decoded.append(int(out.lengths.max()))

  seconds = common.timed(run, repeats)
  return SAMPLE_PROMPTS * SAMPLE_N * min(decoded) / seconds


def measure(name: str, mesh, repeats: int, peak_flops: float) -> dict[str, float]:
  model = architectures.build_model(name, "bfloat16")
  num_params = sum(x.size for x in jax.tree.leaves(params_lib.abstract_params(model)))
  rng = np.random.default_rng(0)
  pairs = train_step._pair_batch(rng)
  tb = train_step._token_batch(rng, train_step.PAIRS * train_step.K)
  rloo_batch = steps.sequence_batch(tb, rewards=rng.uniform(0, 1, train_step.PAIRS * train_step.K))
  rows = train_step.PROMPT + train_step.RESPONSE
  state, settings = train_step._state_and_settings(model, mesh, with_ref=False)
  dpo = steps.make_preference_step(settings, "dpo", losses.PreferenceHParams())
  dpo_tok_s = train_step._tok_s(dpo, state, pairs, 2 * train_step.PAIRS * rows, repeats)
  del state
  state, settings = train_step._state_and_settings(model, mesh, with_ref=True)
  step = steps.make_rloo_step(settings, rloo.RlooHParams(k=train_step.K))
  rloo_tok_s = train_step._tok_s(step, state, rloo_batch, train_step.PAIRS * train_step.K * rows, repeats)
  del state
  sample_tok_s = _sample_tok_s(model, mesh, repeats)
  decode_flops = sampler_bench.decode_flops_per_token(model.config, sampler_bench.CACHE)
  return {
    "params": float(num_params),
    "dpo_tok_s": dpo_tok_s,
    "dpo_mfu": 6 * num_params * dpo_tok_s / peak_flops,
    "rloo_tok_s": rloo_tok_s,
    "rloo_mfu": 8 * num_params * rloo_tok_s / peak_flops,
    "sample_tok_s": sample_tok_s,
    "sample_mfu": decode_flops * sample_tok_s / peak_flops,
  }


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--models", default="small,gemma2_2b", help="comma-separated architecture names")
  parser.add_argument("--tiny", action="store_true", help="test size: the tiny model, one timed repeat")
  args = parser.parse_args()
  names = ["tiny"] if args.tiny else args.models.split(",")
  repeats = 1 if args.tiny else 5
  device = jax.devices()[0]
  peak_tflops, source = chip_peak(device.device_kind)
  print(
    f"device: {device.device_kind} ({jax.default_backend()}); bf16 peak {peak_tflops:.3g} TFLOP/s ({source})"
  )
  mesh = mesh_lib.make_mesh({"data": 1}, devices=[device])
  figures = {"device_kind": device.device_kind, "peak_bf16_tflops": peak_tflops, "peak_source": source}
  for name in names:
    row = measure(name, mesh, repeats, peak_tflops * 1e12)
    figures.update({f"{name}_{k}": v for k, v in row.items()})
    print(
      f"{name:10s} {row['params'] / 1e6:8.1f}M params  DPO {row['dpo_tok_s']:9.0f} tok/s "
      f"(MFU {100 * row['dpo_mfu']:5.1f}%)  RLOO {row['rloo_tok_s']:9.0f} tok/s (MFU {100 * row['rloo_mfu']:5.1f}%)  "
      f"sampling n={SAMPLE_N} x {SAMPLE_PROMPTS} {row['sample_tok_s']:9.0f} tok/s (MFU {100 * row['sample_mfu']:5.1f}%)",
      flush=True,
    )
  print(json.dumps(figures))


if __name__ == "__main__":
  main()
