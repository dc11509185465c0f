"""Real-size compile checks, at test size: a tiny model's programs compiled on 8 fake CPU devices."""

import dataclasses

from gemma import gm
import jax
import pytest

from eva_jax.models import architectures
from eva_jax.models import params as params_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.scale import compile_check
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
  # With short rows a device's whole sequences can hold fewer elements than the embedding table:
  # the table (or a shard of its width) is never logits.
  table = "%e = f32[1000,96]{1,0} parameter(0)\n%t = bf16[48,250]{1,0} transpose(%e)"
  assert compile_check.full_vocab_arrays(table, vocab=1000, whole=40) == 2
  assert compile_check.full_vocab_arrays(table, vocab=1000, whole=40, width=96) == 0


LOOPS_HLO = """
%add (x: f32[], y: f32[]) -> f32[] {
  ROOT %a = f32[] add(f32[] %x, f32[] %y)
}

%inner (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %ar = f32[8]{0} all-reduce(f32[8]{0} %v), to_apply=%add
}

%decode (p: (s32[], f32[8])) -> (s32[], f32[8]) {
  %ag = f32[2,1728,1152]{2,1,0} all-gather(f32[2,1728,576]{2,1,0} %w), dimensions={2}
  %nested = (s32[], f32[8]) while((s32[], f32[8]) %t), condition=%cond, body=%inner, backend_config={"known_trip_count":{"n":"3"}}
}

%cond (p: (s32[], f32[8])) -> pred[] {
  ROOT %c = pred[] constant(true)
}

ENTRY %main (a: f32[16]) -> f32[16] {
  %ar0 = f32[16]{0} all-reduce(f32[16]{0} %a), to_apply=%add
  %loop = (s32[], f32[8]) while((s32[], f32[8]) %t0), condition=%cond, body=%decode
  %scan = (s32[], f32[8]) while((s32[], f32[8]) %t1), condition=%cond, body=%inner, backend_config={"known_trip_count":{"n":"4"}}
}
"""


def test_loops_are_read_per_iteration_and_per_call():
  decode, scan = compile_check.hlo_loops(LOOPS_HLO, frozenset({(2, 1728, 1152)}))
  # The decode loop: no known trip count; per iteration one weight gather and the nested loop's
  # all-reduce three times.
  assert decode.trip_count is None and decode.weight_gathers == 1
  assert decode.collectives["all-gather"] == {"count": 1, "bytes": 2 * 1728 * 1152 * 4}
  assert decode.collectives["all-reduce"] == {"count": 3, "bytes": 3 * 32}
  assert scan.trip_count == 4 and scan.weight_gathers == 0
  assert scan.collectives["all-reduce"] == {"count": 1, "bytes": 32}
  # Per call: the entry's own, the decode loop once (trips unknown), the scan 4 times.
  per_call = compile_check.collectives_per_call(LOOPS_HLO)
  assert per_call["all-reduce"] == {"count": 1 + 3 + 4, "bytes": 64 + 96 + 128}
  assert per_call["all-gather"]["count"] == 1
  assert (
    compile_check.hlo_collectives(LOOPS_HLO)["all-reduce"]["count"] == 2
  )  # the text: each computation once


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
  (decode,) = [loop for loop in generate.loops if loop.trip_count is None]  # the decode loop
  assert decode.collectives["all-reduce"]["count"] > 0  # tensor parallel: per layer and token


@pytest.mark.devices(8)
def test_gathered_param_dims_and_bytes(mesh8):
  shardings = params_lib.shardings_for(MODEL, mesh8, partition.DEFAULT_RULES)
  params = compile_check._abstract(params_lib.abstract_params(MODEL), shardings)
  dims = compile_check.gathered_param_dims(params)
  # The [1000, 96] embedding is split (vocab over tensor 4, width over fsdp 2): gathered over fsdp,
  # a device holds [250, 96]; the MLP's [192, 96] output projection becomes [48, 96].
  assert (250, 96) in dims and (48, 96) in dims
  assert (1000, 96) not in dims  # tensor splits stay
  embedding = 250 * 48 * 4  # the other fsdp device's float32 shard
  assert compile_check.fsdp_gather_bytes(params) > embedding


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
