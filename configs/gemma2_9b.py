"""gemma-2-9b-it, the paper's solver model, on a TPU pod slice or a GPU host.

    python -m eva_jax.main --config=configs/gemma2_9b.py --workdir=gs://BUCKET/run \
      --config.model.checkpoint=/path/to/gemma2-9b-it --config.model.tokenizer=/path/to/tokenizer.model

Hardware: 9.2B params in bfloat16 need ~18.5 GB; the default mesh shards them over fsdp x tensor
(tensor=4 within a host, fsdp over the rest). The memory plan (`--mode=plan --plan_topology=T`,
shapes only; a phase fits within 90% of device memory) for this config as it stands, i.e. the
quickstart's solver sizes (batch 32, prompt 64 + response 32 tokens, AdamW moments in float32):

    topology   mesh (data, fsdp, tensor)  plan: train step / device  verdict
    v5e-8      1, 2, 4                    29.3 GiB of 16            does not fit at any micro_batches (23.7:
                                                                    the float32 update temporaries alone)
    v5e-16     1, 4, 4                    14.7 GiB of 16            does not fit; fits with
                                                                    --config.solver.micro_batches=2 (11.8)
    v5e-32     1, 8, 4                     7.3 GiB of 16            fits
    v5e-64     1, 16, 4                    3.7 GiB of 16            fits
    v6e-8      1, 2, 4                    29.3 GiB of 32            does not fit; fits with micro_batches=2 (23.7)
    v5p-8      1, 1, 4 (4 chips)          58.6 GiB of 95            fits
    h100-8     1, 2, 4                    29.3 GiB of 80            fits

The same programs compiled at real size on fake CPU devices (`XLA_FLAGS=--xla_force_host_platform_
device_count=N python -m bench.scale_check --configs configs/gemma2_9b.py --models gemma2_9b
--devices N --programs train,generate`; XLA:CPU's per-device live peak, bench/RESULTS.md):

    devices (topologies)          train step: XLA / plan       generate: XLA / plan
    4 (v5p-8)                     57.1 / 58.6 GiB              12.5 / 10.0 GiB
    8 (v5e-8, v6e-8, h100-8)      33.9 / 29.3 GiB              20.0 / 5.0 GiB
    16 (v5e-16)                   20.1 / 14.7 GiB              18.9 / 2.5 GiB
    64 (v5e-64)                   V64T / 3.7 GiB               V64G / 0.6 GiB

The compiled train-step figures give the same verdicts (v6e-8's 33.9 GiB is over its 32 too). The
generate figures are far above the plan at small shapes: XLA hoists the FSDP weight gathers out of
the decode loop and XLA:CPU holds the gathered weights in float32 (17.3 GiB of all-gathered weights
on 8 and on 16 devices); a TPU holds bfloat16, half that. Where sampling matters (v5e-16), check
on the slice, or sample with `("embed", None)` in `mesh.rules` (weights split over tensor only).
Longer sequences or larger batches (the paper's DPO: batch 64, 2048 tokens;
configs/gemma2_9b_dpo.py) need more: plan them before launching (launch/README.md). `--mode=train` (the default) runs the eva loop with the quickstart's loop
settings; `--mode=check` the model check (load the checkpoint sharded, score task answers, orbax
round trip). Nothing is downloaded: both paths are required.
"""

from configs import quickstart


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
