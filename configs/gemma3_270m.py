"""gemma-3-270m-it with the paper's DPO recipe: the cheapest real model for a real eva run.

    python -m eva_jax.main --config=configs/gemma3_270m.py --workdir=/runs/eva_270m \
      --config.model.checkpoint=/ckpts/gemma-3-270m-it \
      --config.pool.seed_source=jsonl --config.pool.seed_path=/data/ultrafeedback_prompts.jsonl \
      --config.reward.url=http://rm-host:8000/score \
      --config.creator.llm.base_url=http://llm-host:8001/v1 --config.creator.llm.model=gemma-3-27b-it \
      --config.eval.prompts_path=/data/heldout.jsonl

`model.checkpoint` is a Hugging Face directory (`save_pretrained` of google/gemma-3-270m-it, whose
tokenizer.model is used) or the gemma library's orbax checkpoint (then also
`--config.model.tokenizer=/ckpts/tokenizer.model`). Everything else is configs/gemma2_9b_dpo.py:
n=6 at temperature 0.7 / top-p 0.9, prompt and response <= 1024 tokens, DPO beta 0.05, lr 5e-7
cosine with 10% warmup, 2 epochs a round, batch 64, 3 rounds; the same required fields.

Hardware: 268M params (168M of them the 262k x 640 embedding) in float32 (a 5e-7 step is below
bfloat16's resolution for most weights), replicated on every device, batch split over `data`.
Defaults for one 80 GB GPU: 16 micro-batches of 4 pairs, 32 prompts per sampler call. The memory
plan (`--mode=plan --plan_topology=T`, shapes only; a phase fits within 90% of device memory):

    topology   mesh (data, fsdp, tensor)  train step / device        sampling   verdict
    h100-1     1, 1, 1                    55.5 GiB of 80             18.8       fits
    h200-1     1, 1, 1                    105.9 of 140 (micro 8)     18.8       fits with micro_batches=8
    v6e-4      4, 1, 1                    17.6 of 32                 5.4        fits
    v6e-8      8, 1, 1                    17.6 of 32 (micro 8)       3.2        fits with micro_batches=8
    v5e-8      8, 1, 1                    17.6 of 16 (micro 8)       3.2        does not fit

17.6 GiB is one pair of 2 x 2048 tokens per device without rematerialisation (activations 12.6);
a v5e needs the rematerialising trainer (issue 28). On 8 devices, micro_batches=16 leaves 4 pairs
per micro-batch, which do not split over 8: use 8 there. `:runlocal` shrinks everything to the
tiny model and the embedded task (configs/gemma2_9b_dpo.py).
"""

from eva_jax import config_files

gemma2_9b_dpo = config_files.sibling(__file__, "gemma2_9b_dpo")


def get_config(arg: str | None = None):
  config = gemma2_9b_dpo.get_config()
  config.model.name = "gemma3_270m"  # Gemma 3 270M (18 layers, width 640, 262k vocabulary).
  config.model.param_dtype = "float32"  # Full-precision params: affordable at 268M.
  config.model.checkpoint = ""  # Required: a Hugging Face or orbax gemma-3-270m(-it) directory.
  config.model.tokenizer = ""  # "" = the Hugging Face directory's tokenizer.model.
  config.mesh.shape = dict(data=-1, fsdp=1, tensor=1)  # Replicated params, rows split over devices.
  config.solver.micro_batches = 16  # 4 pairs at a time: one 80 GB GPU (see the plan above).
  config.loop.sample_batch_size = 32  # Prompts per sampler call (KV cache 15.8 GiB on one device).
  return gemma2_9b_dpo.runlocal(config) if arg == "runlocal" else config
