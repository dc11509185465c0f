"""The gemma3_1b architecture (262k vocabulary, 26 layers) compiled on 8 fake CPU devices.

Real widths, head counts and vocabulary at shortened sequences (compile time depends on the
layers, not the lengths): nothing is allocated. The paper-size figures (gemma2 9b/2b, 2,048-token
rows) are `bench.scale_check`'s, in bench/RESULTS.md.
"""

import jax
import numpy as np
import pytest

from eva_jax.models import architectures
from eva_jax.models import params as params_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.scale import compile_check
from eva_jax.solver import optim
from eva_jax.solver import steps

SIZES = compile_check.Sizes(
  pairs=16,
  micro_batches=1,
  prompt_len=256,
  response_len=256,
  rloo_k=4,
  sample_prompts=16,
  num_samples=2,
  cache_len=512,
  new_tokens=256,
  chunk=128,
)


@pytest.fixture(scope="module")
def setting():
  mesh = mesh_lib.make_mesh({"data": 1, "fsdp": 2, "tensor": 4}, devices=jax.devices()[:8])
  model = architectures.build_model("gemma3_1b", "bfloat16")
  shardings = params_lib.shardings_for(model, mesh, partition.DEFAULT_RULES)
  params = compile_check._abstract(params_lib.abstract_params(model), shardings)
  return model, mesh, params


@pytest.mark.devices(8)
def test_gemma3_1b_dpo_step_and_decode_loop(setting):
  model, mesh, params = setting
  step, generate = compile_check.compile_run(
    model,
    "bfloat16",
    mesh,
    partition.DEFAULT_RULES,
    SIZES,
    optim.OptimizerConfig(learning_rate=1e-6),
    programs=("dpo_step", "generate"),
  )
  vocab = model.config.num_embed
  assert vocab == 262_144
  assert step.full_vocab_arrays == 0 and generate.full_vocab_arrays == 0  # chunked unembedding
  assert step.full_param_arrays == 0 and generate.full_param_arrays == 0  # no tensor split undone
  # The train step's largest buffer is a shard: one chunk's float32 logits for this device's rows
  # (32 rows / fsdp 2) over a quarter of the vocabulary, not the [262144, 1152] embedding or its
  # AdamW moments in float32.
  embedding_f32 = vocab * model.config.embed_dim * 4
  assert step.largest_buffer[0] < embedding_f32
  assert step.largest_buffer[0] <= 16 * SIZES.chunk * (vocab // 4) * 4
  # The state is donated: the params and moments are updated in place, not copied.
  assert step.alias_bytes > 0.9 * step.argument_bytes - 2**20
  # FSDP gathers each layer's weights; the activations stay split over rows, so the only
  # activation-sized all-reduces are tensor parallelism's two per layer (attention and MLP outputs).
  layers = model.config.num_layers
  assert step.collectives_run["all-gather"]["count"] >= layers
  (decode,) = [loop for loop in generate.loops if loop.trip_count is None]
  per_step = sum(v["bytes"] for v in decode.collectives.values())
  assert decode.collectives["all-reduce"]["count"] >= 2 * layers
  assert per_step > 0


@pytest.mark.devices(8)
def test_rows_stay_split_so_fsdp_gathers_weights_not_activations(setting):
  model, mesh, params = setting
  batch = compile_check._pair_batch(SIZES, mesh)
  found = {}
  for name, on_mesh in (("unconstrained", None), ("rows split", mesh)):
    jitted = jax.jit(lambda p, mb, m=on_mesh: steps.pair_sequence_logprobs(model, p, mb, SIZES.chunk, m)[0])
    found[name] = compile_check.compile_program(
      name, jitted, (params, batch), vocab=model.config.num_embed, whole=np.iinfo(np.int64).max, params=params
    )
  loose, split = found["unconstrained"], found["rows split"]
  # Left alone, XLA splits activations over the width (fsdp) like the weights, and every matmul
  # ends in an all-reduce of partial sums: 5x the bytes here (4.5x at the paper's sizes).
  assert split.collectives_run["all-reduce"]["bytes"] < loose.collectives_run["all-reduce"]["bytes"] / 3
  assert split.collectives_run["all-gather"]["count"] > loose.collectives_run["all-gather"]["count"] + 26
  assert split.largest_buffer[0] <= loose.largest_buffer[0] / 2  # the chunk logits: rows split too
