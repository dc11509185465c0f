"""Real-size compile checks, at test size: a tiny model's programs compiled on 8 fake CPU devices."""

import dataclasses

from gemma import gm
import jax
import pytest

from eva_jax.models import architectures
from eva_jax.parallel import compile_check
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.solver import optim

SIZES = compile_check.Sizes(
  pairs=8,
  micro_batches=2,
  prompt_len=32,
  response_len=64,
  rloo_k=4,
  sample_prompts=8,
  num_samples=2,
  cache_len=80,
  new_tokens=16,
  chunk=8,
)
# The tiny architecture's dims coincide (vocab 512 / 4 = width 128 = a sequence length); this one's
# are all distinct, so a vocabulary-sized dimension in the HLO can only be logits or the embedding.
MODEL = gm.nn.Transformer(
  config=dataclasses.replace(
    architectures.cpu_sized_config(layers=2, width=96, heads=2, kv_heads=1, mlp=192), num_embed=1000
  )
)
HLO = """
  %all-gather-start = (bf16[4,128]{1,0}, bf16[16,128]{1,0}) all-gather-start(bf16[4,128]{1,0} %p), dimensions={0}
  %all-gather-done = bf16[16,128]{1,0} all-gather-done(%all-gather-start)
  %all-reduce.3 = f32[256]{0} all-reduce(f32[256]{0} %x), to_apply=%add
  %rs = bf16[2,96]{1,0} reduce-scatter(bf16[8,96]{1,0} %y), dimensions={0}
  %logits = f32[8,128,1000]{2,1,0} dot(%h, %w)
  %emb = f32[1000,96]{1,0} parameter(0)
"""


def test_hlo_readers():
  found = compile_check.hlo_collectives(HLO)
  assert found["all-gather"] == {"count": 1, "bytes": 4 * 128 * 2 + 16 * 128 * 2}  # the start's tuple, once
  assert found["all-reduce"] == {"count": 1, "bytes": 1024}
  assert found["reduce-scatter"] == {"count": 1, "bytes": 2 * 96 * 2}
  # [8, 128, 1000] logits of whole 128-token sequences count; the [1000, 96] embedding table does not.
  assert compile_check.full_vocab_arrays(HLO, vocab=1000, whole=8 * 128) == 1
  assert compile_check.full_vocab_arrays(HLO, vocab=4000, whole=8 * 128) == 1  # a 1/4 shard
  assert compile_check.full_vocab_arrays(HLO, vocab=1000, whole=8 * 2048) == 0  # a chunk of longer rows
  # One chunk's logits for 128 rows x 256 columns of a 262,144 vocabulary split 4 ways: 32,768 is
  # also vocab / 8, but the vocabulary is the larger dimension, and 32,768 < a whole 64 x 1,024.
  assert compile_check.full_vocab_arrays("%d = bf16[32768,65536]{1,0} dot(", 262144, 64 * 1024) == 0
  assert compile_check.largest_buffer(HLO) == (8 * 128 * 1000 * 4, "f32[8,128,1000]")


@pytest.fixture(scope="module")
def mesh8():
  return mesh_lib.make_mesh({"data": 1, "fsdp": 2, "tensor": 4}, devices=jax.devices()[:8])


@pytest.mark.devices(8)
def test_tiny_dpo_step_and_generate_compile_sharded_without_full_logits(mesh8):
  programs = compile_check.compile_run(
    MODEL,
    "float32",
    mesh8,
    partition.DEFAULT_RULES,
    SIZES,
    optim.OptimizerConfig(learning_rate=1e-5),
    programs=("dpo_step", "generate"),
  )
  step, generate = programs
  assert step.full_vocab_arrays == 0 and generate.full_vocab_arrays == 0  # chunked unembedding
  assert step.collectives["all-gather"]["count"] > 0  # fsdp: weights gathered per layer
  assert step.flops > 0 and step.temp_bytes > 0 and step.alias_bytes > 0  # the state is donated
  assert step.peak_bytes == step.argument_bytes + step.temp_bytes + step.output_bytes - step.alias_bytes


@pytest.mark.devices(8)
def test_unchunked_log_probs_are_caught(mesh8):
  whole = dataclasses.replace(SIZES, chunk=96)  # one chunk = the whole sequence
  (ref,) = compile_check.compile_run(
    MODEL,
    "float32",
    mesh8,
    partition.DEFAULT_RULES,
    whole,
    optim.OptimizerConfig(learning_rate=1e-5),
    programs=("ref_logprobs",),
  )
  assert ref.full_vocab_arrays > 0
