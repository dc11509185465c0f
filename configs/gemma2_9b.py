"""gemma-2-9b-it, the paper's solver model, on a TPU pod slice or a GPU host.

    python -m eva_jax.main --config=configs/gemma2_9b.py --workdir=gs://BUCKET/run \
      --config.model.checkpoint=/path/to/gemma2-9b-it --config.model.tokenizer=/path/to/tokenizer.model

Hardware: 9.2B params in bfloat16 need ~18.5 GB; the default mesh shards them over fsdp x tensor
(tensor=4 within a host, fsdp over the rest). The memory plan (`--mode=plan --plan_topology=T`,
shapes only; a phase fits within 90% of device memory) for this config as it stands, i.e. the
quickstart's solver sizes (batch 32, prompt 64 + response 32 tokens, AdamW moments in float32):

    topology   mesh (data, fsdp, tensor)  peak train step / device  verdict
    v5e-8      1, 2, 4                    37.4 GiB of 16            does not fit (23.7 with micro_batches=8)
    v5e-16     1, 4, 4                    18.7 GiB of 16            does not fit; fits with
                                                                    --config.solver.micro_batches=2 (13.7)
    v5e-32     1, 8, 4                     9.3 GiB of 16            fits
    v5e-64     1, 16, 4                    4.7 GiB of 16            fits
    v6e-8      1, 2, 4                    37.4 GiB of 32            does not fit; fits with micro_batches=2 (27.3)
    v5p-8      1, 1, 4 (4 chips)          74.7 GiB of 95            fits
    h100-8     1, 2, 4                    37.4 GiB of 80            fits

Sampling peaks are far lower (5.0 GiB on v5e-8). Longer sequences or larger batches (the paper's
DPO: batch 64, 2048 tokens; configs/gemma2_9b_dpo.py) need more: plan them before launching
(launch/README.md). `--mode=train` (the default) runs the eva loop with the quickstart's loop
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
