"""gemma-2-9b-it, the paper's solver model, on a TPU pod slice or a GPU host.

    python -m eva_jax.main --config=configs/gemma2_9b.py --workdir=gs://BUCKET/run \
      --config.model.checkpoint=/path/to/gemma2-9b-it --config.model.tokenizer=/path/to/tokenizer.model

Hardware: 9.2B params in bfloat16 need ~18.5 GB; the default mesh shards them over fsdp x tensor
(tensor=4 within a host, fsdp over the rest). The memory plan (`--mode=plan --plan_topology=T`,
shapes only; a phase fits within 90% of device memory) for this config as it stands, i.e. the
quickstart's solver sizes (batch 32, prompt 64 + response 32 tokens, AdamW moments in float32):

    topology   mesh (data, fsdp, tensor)  plan: train step / device  verdict
    v5e-8      1, 2, 4                    31.5 GiB of 16            does not fit at any micro_batches (23.7:
                                                                    the float32 update temporaries alone)
    v5e-16     1, 4, 4                    17.9 GiB of 16            does not fit; fits with
                                                                    --config.solver.micro_batches=4 (13.4)
    v5e-32     1, 8, 4                    11.1 GiB of 16            fits
    v5e-64     1, 16, 4                    7.7 GiB of 16            fits
    v6e-8      1, 2, 4                    31.5 GiB of 32            does not fit; fits with micro_batches=2 (25.4)
    v5p-8      1, 1, 4 (4 chips)          58.6 GiB of 95            fits
    h100-8     1, 2, 4                    31.5 GiB of 80            fits

The same programs compiled at real size on fake CPU devices (`XLA_FLAGS=--xla_force_host_platform_
device_count=N python -m bench.scale_check --configs configs/gemma2_9b.py --models gemma2_9b
--devices N --programs train,generate`; XLA:CPU's per-device live peak, bench/RESULTS.md):

    devices (topologies)          train step: XLA / plan       generate: XLA / plan
    4 (v5p-8)                     56.6 / 58.6 GiB              9.5 / 10.0 GiB
    8 (v5e-8, v6e-8, h100-8)      33.9 / 31.5 GiB              9.8 / 7.2 GiB
    16 (v5e-16)                   18.7 / 17.9 GiB              6.7 / 5.7 GiB
    64 (v5e-64)                   12.4 / 7.7 GiB               4.9 / 4.7 GiB

The compiled figures give the same verdicts (v6e-8's 33.9 GiB is over its 32 too). XLA is above
the plan where weights are gathered: XLA:CPU holds bfloat16 math in float32, its gathered weights
included (a TPU holds them in bfloat16), which is most of the 64-device gap (4.0 GiB of gathered
weights in bf16, 8 in f32). Sampling fits everywhere listed.

Longer sequences or larger batches (the paper's DPO: batch 64, 2048 tokens;
configs/gemma2_9b_dpo.py) need more: plan them before launching (launch/README.md).
`--mode=train` (the default) runs the eva loop with the quickstart's loop settings; `--mode=check` the model check (load the checkpoint sharded, score task answers, orbax
round trip). Nothing is downloaded: both paths are required.
"""

from eva_jax import config_files

quickstart = config_files.sibling(__file__, "quickstart")


def get_config(arg: str | None = None):
  config = quickstart.get_config(arg)
  config.model.name = "gemma2_9b"  # The paper's solver.
  config.model.param_dtype = "bfloat16"  # Params as released.
  config.model.checkpoint = ""  # Required: official gemma-2-9b-it checkpoint directory.
  config.model.tokenizer = ""  # Required: Gemma 2 tokenizer.model.
  config.model.logprob_chunk = 8  # Unembed 8 of the 32 response columns at a time (256k vocab).
  config.mesh.shape = dict(data=1, fsdp=-1, tensor=4)  # Tensor-parallel within a host, fsdp across.
  config.solver.batch_size = 32  # Pairs per optimizer step (the plans in the docstring are for 32).
  return config
