"""Sampler throughput: ours vs the gemma library's `gm.text.Sampler`, same model, prompts, settings.

    .venv/bin/python -m bench.sampler [--quick]

Model: the `small` architecture (6 layers, width 256, float32). Both samplers get the same cache
length (256), sampling settings (temperature 0.7, top-p 0.9 for ours; the gemma sampler's
`TopPSampling` with the same values) and number of new tokens (64; no early stop: every step
counts). eva's workload is n samples per prompt: ours prefills each prompt once and decodes n
continuations; the gemma sampler gets the prompt list repeated n times. Tokens/s counts generated
tokens (prompts x n x decode steps run) over wall time after a warm-up call of the same shape. The last
line is JSON: ours_tok_s, gemma_tok_s, ratio (largest batch, n=6), ratio_n1 (n=1).
"""

import argparse
import functools
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from gemma import gm  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

from bench import common  # noqa: E402
from eva_jax.models import architectures  # noqa: E402
from eva_jax.models import chat_template  # noqa: E402
from eva_jax.models import params as params_lib  # noqa: E402
from eva_jax.models import tokenizer as tokenizer_lib  # noqa: E402
from eva_jax.parallel import mesh as mesh_lib  # noqa: E402
from eva_jax.sampling import sampler  # noqa: E402
from eva_jax.tasks import addition  # noqa: E402

CACHE, NEW_TOKENS = 256, 64


def decode_flops_per_token(config, cache_len: int) -> float:
  """Forward FLOPs to decode one token: 2 x matmul params (incl. unembedding) + attention over the cache."""
  d, f, layers = config.embed_dim, config.hidden_dim, config.num_layers
  per_layer = d * config.head_dim * (2 * config.num_heads + 2 * config.num_kv_heads) + 3 * d * f
  attention = 2 * config.num_heads * config.head_dim * cache_len  # scores + weighted values
  return layers * (2 * per_layer + 2 * attention) + 2 * d * config.num_embed


def _run_ours(model, params, tokenizer, prompts, config, steps):
  out = sampler.sample(model, params, tokenizer, prompts, config, jax.random.key(1), progress=False)
  steps.append(int(out.lengths.max()))  # the loop ends early only if every row stopped


def _run_gemma(theirs, texts):
  theirs.sample(
    texts, max_new_tokens=NEW_TOKENS, sampling=gm.text.TopPSampling(p=0.9, temperature=0.7), rng=1
  )


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--quick", action="store_true", help="batches 1 and 8 only, one timed repeat")
  parser.add_argument(
    "--tiny", action="store_true", help="test size: the tiny model, batch 2 only, one timed repeat"
  )
  args = parser.parse_args()
  batches = (2,) if args.tiny else (1, 8) if args.quick else (1, 8, 32)
  repeats = 1 if args.quick or args.tiny else 2
  model = architectures.build_model("tiny" if args.tiny else "small")  # tiny: a contract check, not figures
  tokenizer = tokenizer_lib.load_tokenizer("embedded")
  mesh = mesh_lib.make_mesh({"data": 1}, devices=jax.devices()[:1])
  params = params_lib.init_params(model, jax.random.key(0), params_lib.shardings_for(model, mesh))
  rng = np.random.default_rng(0)
  prompts = [addition.random_problem(rng).prompt for _ in range(max(batches))]
  theirs = gm.text.Sampler(model=model, params=params, tokenizer=tokenizer, cache_length=CACHE)

  rows, figures = [], {}
  for n in (6, 1):
    config = sampler.SamplingConfig(
      num_samples=n,
      max_new_tokens=NEW_TOKENS,
      temperature=0.7,
      top_p=0.9,
      batch_size=max(batches),
      min_cache_length=CACHE,
    )
    for batch in batches:
      steps = []
      ours = functools.partial(_run_ours, model, params, tokenizer, prompts[:batch], config, steps)
      texts = [chat_template.format_prompt(p) for p in prompts[:batch] for _ in range(n)]
      gemma = functools.partial(_run_gemma, theirs, texts)
      generated = batch * n * NEW_TOKENS
      ours_s, gemma_s = common.timed(ours, repeats), common.timed(gemma, repeats)
      # Ours is credited only with the decode steps it ran (<= NEW_TOKENS), never more.
      row = dict(
        n=n, prompts=batch, ours_tok_s=batch * n * min(steps) / ours_s, gemma_tok_s=generated / gemma_s
      )
      row["ratio"] = row["ours_tok_s"] / row["gemma_tok_s"]
      rows.append(row)
      print(
        f"n={n} prompts={batch:3d}  ours {row['ours_tok_s']:9.0f} tok/s  gemma {row['gemma_tok_s']:9.0f} tok/s  ratio {row['ratio']:.2f}"
      )
  largest = [r for r in rows if r["n"] == 6 and r["prompts"] == max(batches)][0]
  largest_n1 = [r for r in rows if r["n"] == 1 and r["prompts"] == max(batches)][0]
  peak = common.matmul_peak_gflops()
  flops = decode_flops_per_token(model.config, CACHE)
  mfu = largest["ours_tok_s"] * flops / 1e9 / peak
  print(
    f"matmul peak {peak:.0f} GFLOP/s (f32); decode {flops / 1e6:.1f} MFLOP/token; "
    f"ours at n=6 x {max(batches)} reaches {100 * mfu:.1f}% of peak"
  )
  figures = {
    "ours_tok_s": largest["ours_tok_s"],
    "gemma_tok_s": largest["gemma_tok_s"],
    "ratio": largest["ratio"],
    "ratio_n1": largest_n1["ratio"],
    "ours_tok_s_n1": largest_n1["ours_tok_s"],
    "gemma_tok_s_n1": largest_n1["gemma_tok_s"],
    "matmul_peak_f32_gflops": peak,
    "decode_mflop_per_token": flops / 1e6,
    "ours_decode_mfu_f32": mfu,
    "gemma_decode_mfu_f32": largest["gemma_tok_s"] * flops / 1e9 / peak,
  }
  print(json.dumps(figures))


if __name__ == "__main__":
  main()
