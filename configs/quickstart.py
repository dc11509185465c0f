"""The quickstart: the tiny Gemma-architecture model and the embedded task, on CPU.

    make quickstart
    # = python -m eva_jax.main --config=configs/quickstart.py --workdir=/tmp/eva_quickstart

Hardware: any CPU (2 cores suffice); about 30 s after the one-time install. Today it runs the
model check (sharded init, chunked log-probs of right and wrong answers, orbax round trip); the
eva loop will take its place.
"""

import ml_collections

from eva_jax.parallel import partition


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  config = ml_collections.ConfigDict()
  config.seed = 0  # PRNG seed for init and for every sampled quantity downstream.

  config.model = ml_collections.ConfigDict()
  config.model.name = "tiny"  # Architecture name: tiny, small, gemma2_{2b,9b,27b}, gemma3_{1b,4b,12b,27b}.
  config.model.param_dtype = "float32"  # Param dtype: float32 or bfloat16.
  config.model.checkpoint = ""  # Official Gemma checkpoint directory; "" = random init.
  config.model.tokenizer = ""  # Sentencepiece .model path; "" = the embedded tokenizer (tiny/small).
  config.model.logprob_chunk = 128  # Sequence columns unembedded at once in log-prob computations.

  config.mesh = ml_collections.ConfigDict()
  config.mesh.shape = dict(data=-1, fsdp=1, tensor=1)  # Devices per mesh axis; -1 fills.
  config.mesh.rules = partition.DEFAULT_RULES  # (logical axis, mesh axis) pairs for params.

  config.check = ml_collections.ConfigDict()
  config.check.num_problems = 8  # Task problems the model check scores.
  return config
