"""The memory plan: per-device bytes of gemma-2-9b on TPU topologies it never touches, checked by hand.

gemma-2-9b (gm.nn.Gemma2_9B): vocab V = 256128, width D = 3584, MLP F = 14336, H = 16 heads and
K = 8 KV heads of 256, 42 layers. Per layer: q_einsum [H, D, 256], kv_einsum [2, K, D, 256],
attn_vec_einsum [H, 256, D], gating_einsum [2, F, D], linear [F, D] and 4 norm scales [D]; plus the
embedding [V, D] and the final norm [D]: 9,242,164,736 params, of which the 169 norm scales (605,696
values) are never split. Default rules: vocab/heads/kv_heads/mlp over tensor, embed over fsdp.
"""

import pytest

from configs import gemma2_9b
from eva_jax.models import architectures
from eva_jax.scale import memory_plan

GEMMA2_9B_PARAMS = 9_242_164_736
NORM_VALUES = 169 * 3584  # 4 per layer + the final norm, replicated on every device
GIB = 1 << 30


@pytest.fixture(scope="module")
def gemma2_9b_model():
  return architectures.build_model("gemma2_9b", "bfloat16")


@pytest.mark.parametrize(
  "sizes,expected_bytes",
  [
    # One device holds everything: 2 bytes per param.
    ({"data": 1, "fsdp": 1, "tensor": 1}, 18_484_329_472),
    # v5e-64 as configured (fsdp 16 x tensor 4): every matrix splits 64 ways.
    # (9,242,164,736 - 605,696) / 64 + 605,696 = 145,005,056 values.
    ({"data": 1, "fsdp": 16, "tensor": 4}, 2 * 145_005_056),
    # v5e-16 (fsdp 4 x tensor 4): (9,242,164,736 - 605,696) / 16 + 605,696 = 578,203,136 values.
    ({"data": 1, "fsdp": 4, "tensor": 4}, 2 * 578_203_136),
    # v5p-8 = 4 chips (tensor 4 only): 9,241,559,040 / 4 + 605,696 = 2,310,995,456 values.
    ({"data": 1, "fsdp": 1, "tensor": 4}, 2 * 2_310_995_456),
    # 64 devices as fsdp 4 x tensor 16: 8 KV heads do not split 16 ways, so kv_einsum is split over
    # fsdp only. Per layer: q 1*896*256 = 229,376; kv 2*8*896*256 = 3,670,016; attn_vec 229,376;
    # gating 2*896*896 = 1,605,632; linear 896*896 = 802,816; norms 4*3584 = 14,336: 6,551,552.
    # 42 layers 275,165,184 + embedding 16008*896 = 14,343,168 + final norm 3,584 = 289,511,936.
    ({"data": 1, "fsdp": 4, "tensor": 16}, 2 * 289_511_936),
    # A data axis replicates params: data 2 x fsdp 8 x tensor 4 holds what fsdp 8 x tensor 4 holds.
    ({"data": 2, "fsdp": 8, "tensor": 4}, 2 * ((GEMMA2_9B_PARAMS - NORM_VALUES) // 32 + NORM_VALUES)),
  ],
)
def test_gemma2_9b_param_bytes_per_device_match_the_hand_count(gemma2_9b_model, sizes, expected_bytes):
  assert memory_plan.param_bytes(gemma2_9b_model, sizes) == expected_bytes


@pytest.mark.parametrize(
  "name,devices,gib",
  [
    ("v5e-64", 64, 16),
    ("v5litepod-16", 16, 16),
    ("v5p-128", 64, 95),  # v5p sizes count TensorCores: two per chip
    ("v4-32", 16, 32),
    ("v6e-8", 8, 32),
    ("h100-8", 8, 80),
    ("64x16", 64, 16),
    ("4x0.5", 4, 0.5),
  ],
)
def test_topologies(name, devices, gib):
  topo = memory_plan.topology(name)
  assert (topo.num_devices, topo.device_bytes) == (devices, int(gib * GIB))


@pytest.mark.parametrize(
  "name,match", [("tpu9", "unknown topology"), ("v5p-9", "multiple of 2"), ("0x16", "at least")]
)
def test_bad_topologies_are_refused(name, match):
  with pytest.raises(ValueError, match=match):
    memory_plan.topology(name)


@pytest.fixture(scope="module")
def v5e_64_plan():
  return memory_plan.plan_for_config(gemma2_9b.get_config(), "v5e-64")


def test_gemma2_9b_plan_on_v5e_64_needs_no_checkpoint_or_tokenizer(v5e_64_plan):
  plan = v5e_64_plan
  assert plan.mesh == {"data": 1, "fsdp": 16, "tensor": 4}
  assert plan.num_params == GEMMA2_9B_PARAMS
  assert plan.bytes["params"] == 2 * 145_005_056
  # AdamW: two float32 moments per param (4x the bfloat16 params) plus a few replicated counters.
  assert 0 <= plan.bytes["optimizer state"] - 4 * plan.bytes["params"] < 64
  assert plan.bytes["gradient accumulator"] == 2 * plan.bytes["params"]  # float32
  assert plan.bytes["reference params"] == 0  # DPO precomputes reference log-probs
  # KV cache, quickstart sampling sizes: 64 prompts x 6 samples = 384 rows of 128 columns, rows over
  # fsdp 16, KV heads over tensor 4, bfloat16 keys and values plus int32 positions [rows, 128] and
  # end_index [rows]. Per layer: 2*384*128*8*256*2 / 64 = 6,291,456 + 384*128*4 / 16 = 12,288
  # + 384*4 / 16 = 96; the 64-row prefill cache one sixth of that: 1,048,576 + 2,048 + 16.
  per_layer = 6_291_456 + 12_288 + 96 + 1_048_576 + 2_048 + 16
  assert plan.bytes["KV cache"] == 42 * per_layer
  # Prefill: 64 prompts / 16 = 4 per device, 16 heads / 4, 128 - 16 = 112 prompt columns x 128 cache
  # columns, float32 logits and probabilities of one layer.
  assert plan.bytes["prefill attention"] == 2 * 4 * 4 * 112 * 128 * 4
  assert plan.bytes["gathered weights"] == 15 * plan.bytes["params"]  # gathered over fsdp 16
  assert plan.fits and not plan.warnings()
  report = plan.report()
  assert "v5e-64: 64 devices x 16 GiB, mesh {'data': 1, 'fsdp': 16, 'tensor': 4}" in report
  assert "fits: every phase within 90% of device memory" in report


def test_activation_estimate_follows_the_documented_formula(v5e_64_plan):
  # rows = 32 pairs x 2 / 16 = 4; L = 64 + 32 = 96; per token and layer (bfloat16): 8*3584
  # + (2*16 + 2*8)*256/4 + 3*16*96/4 + 4*14336/4 = 47,232 values; plus the [4, 96, 96] mask and
  # three float32 logits chunks [4, 8, 256128] (logprob_chunk 8 of the 32 response columns).
  expected = 4 * 96 * 42 * 47_232 * 2 + 4 * 96 * 96 + 3 * 4 * 8 * 256_128 * 4
  assert v5e_64_plan.bytes["train activations"] == expected


def test_a_plan_that_does_not_fit_says_so():
  config = gemma2_9b.get_config()
  config.solver.optimizer.name = "sgd"  # no moments: the optimizer state is a few counters
  plan = memory_plan.plan_for_config(config, "v5e-8")
  assert plan.bytes["optimizer state"] < 64
  assert not plan.fits
  (warning,) = plan.warnings()
  assert warning.startswith("train step needs") and "more than 90% of 16 GiB" in warning
  assert f"WARNING: {warning}" in plan.report()
  peak = plan.phase_peaks()["train step"]
  assert peak > 0.9 * 16 * GIB
  assert memory_plan.plan_for_config(config, "v5p-16").fits  # the same on 8 chips of 95 GiB


def test_rloo_keeps_the_reference_and_the_train_state_while_sampling():
  config = gemma2_9b.get_config()
  config.solver.loss = "rloo"
  plan = memory_plan.plan_for_config(config, "v5e-64")
  b = plan.bytes
  assert b["reference params"] == b["params"]
  sampling = max(b["sampling logits"], b["prefill attention"])
  expected = b["params"] + b["gathered weights"] + b["KV cache"] + sampling
  expected += b["optimizer state"] + b["reference params"]
  assert plan.phase_peaks()["sampling"] == expected


def test_a_micro_batch_the_run_would_refuse_is_reported():
  config = gemma2_9b.get_config()
  config.solver.batch_size, config.solver.micro_batches = 64, 8  # 8 pairs per micro-batch, 16 batch shards
  plan = memory_plan.plan_for_config(config, "v5e-64")
  assert not plan.fits
  assert plan.warnings()[0] == (
    "solver.batch_size 64: micro-batch of 8 rows does not divide over 16 devices on the batch axes "
    "(data x fsdp); pad the batch or change solver.micro_batches"
  )


def test_the_mixture_of_experts_branch_is_counted():
  # gemma4_26b_a4b: D = 2816, dense shared branch F = 2112, H = 16 heads and K = 8 KV heads of
  # 256, 30 layers of which 5 global (keys of 512, 2 KV heads, values = keys), V = 262144; routed
  # branch: k = 8 of N = 128 experts of width E = 704 (over tensor 4). Per token and local layer:
  # 8*2816 + (2*16 + 2*8)*256/4 + 3*16*96/4 + 4*2112/4 + 8*(2*2816 + 4*704/4) + 128 = 79,680
  # values (without the routed branch 28,864); a global layer's q, k, attention output:
  # (2*16 + 1*2)*512/4 = 4,352 instead of 3,072.
  config = gemma2_9b.get_config()
  config.model.name = "gemma4_26b_a4b"
  plan = memory_plan.plan_for_config(config, "v5e-64")
  expected = 4 * 96 * (30 * 79_680 + 5 * 1_280) * 2 + 4 * 96 * 96 + 3 * 4 * 8 * 262_144 * 4
  assert plan.bytes["train activations"] == expected


def test_gemma4_layers_that_share_a_kv_cache_hold_none():
  # gemma4_e2b: 35 layers, the last 20 read the cache of layer 13 (local) or 14 (global), so 15
  # own one: 12 local (k, v [B, 128, 1 KV head, 256] bfloat16, positions [B, 128] and end_index
  # [B] int32) and 3 global (keys of 512). 1 KV head does not split over tensor 4. Rows per
  # device: (64 prompts + 64 x 6 samples) / 16 = 28.
  config = gemma2_9b.get_config()
  config.model.name = "gemma4_e2b"
  plan = memory_plan.plan_for_config(config, "v5e-64")
  local, global_ = 2 * 128 * 256 * 2 + 128 * 4 + 4, 2 * 128 * 512 * 2 + 128 * 4 + 4
  assert plan.bytes["KV cache"] == 28 * (12 * local + 3 * global_)
