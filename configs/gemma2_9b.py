"""gemma-2-9b-it, the paper's solver model, on a TPU pod slice or a GPU host.

    python -m eva_jax.main --config=configs/gemma2_9b.py --workdir=gs://BUCKET/run \
      --config.model.checkpoint=/path/to/gemma2-9b-it --config.model.tokenizer=/path/to/tokenizer.model

Hardware: 9.2B params in bfloat16 need ~18.5 GB; the default mesh shards them over fsdp x tensor
(e.g. v5e-16: fsdp=4, tensor=4). Today this runs the model check (load the checkpoint sharded,
score task answers, orbax round trip); the eva loop will take its place. Nothing is downloaded:
both paths are required.
"""

from configs import quickstart


def get_config(arg: str | None = None):
  config = quickstart.get_config(arg)
  config.model.name = "gemma2_9b"  # The paper's solver.
  config.model.param_dtype = "bfloat16"  # Params as released.
  config.model.checkpoint = ""  # Required: official gemma-2-9b-it checkpoint directory.
  config.model.tokenizer = ""  # Required: Gemma 2 tokenizer.model.
  config.model.logprob_chunk = 256  # Unembed 256 columns at a time (256k vocab).
  config.mesh.shape = dict(data=1, fsdp=-1, tensor=4)  # Tensor-parallel within a host, fsdp across.
  return config
