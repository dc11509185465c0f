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

  # The solver (eva_jax/solver): loss, batching and optimizer. The paper's DPO settings are beta
  # 0.05, lr 5e-7, batch 64, 2 epochs; the tiny model learns on CPU with a larger lr.
  config.solver = ml_collections.ConfigDict()
  config.solver.loss = "dpo"  # dpo, cdpo, ipo, simpo, orpo, sppo (offline) or rloo (online).
  config.solver.beta = 0.1  # KL anchor (DPO/cDPO/IPO/SPPO/RLOO) or reward scale (SimPO/ORPO).
  config.solver.label_smoothing = 0.0  # cDPO: assumed probability a preference label is flipped.
  config.solver.simpo_gamma = 0.5  # SimPO: target reward margin.
  config.solver.orpo_lambda = 0.1  # ORPO: weight of the odds-ratio term next to the NLL.
  config.solver.nll_weight = 0.2  # Chosen-response NLL added to DPO-family losses (0 = paper).
  config.solver.rloo_k = 4  # RLOO: samples per prompt.
  config.solver.clip_eps = 0.0  # RLOO: token-level importance clipping; 0 = plain REINFORCE.
  config.solver.updates_per_batch = 1  # RLOO: optimizer steps per sampled batch (> 1 needs clip_eps).
  config.solver.batch_size = 32  # Pairs (offline) or prompts x rloo_k rows (RLOO) per optimizer step.
  config.solver.micro_batches = 1  # Gradient-accumulation micro-batches per step.
  config.solver.epochs = 2  # Epochs over each round's pairs.
  config.solver.max_prompt_len = 64  # Prompt tokens, chat template included.
  config.solver.max_response_len = 32  # Response tokens.
  config.solver.optimizer = ml_collections.ConfigDict()
  config.solver.optimizer.name = "adamw"  # adamw, rmsprop (the eva authors' SPPO runs) or sgd.
  config.solver.optimizer.learning_rate = 1e-4  # Peak learning rate.
  config.solver.optimizer.schedule = "cosine"  # cosine, linear or constant after warmup.
  config.solver.optimizer.warmup_frac = 0.1  # Fraction of steps of linear warmup from 0.
  config.solver.optimizer.weight_decay = 0.0  # AdamW decoupled weight decay.
  config.solver.optimizer.b1 = 0.9  # Adam beta1.
  config.solver.optimizer.b2 = 0.999  # Adam beta2 / RMSprop decay.
  config.solver.optimizer.eps = 1e-8  # Adam / RMSprop epsilon.
  config.solver.optimizer.max_grad_norm = 1.0  # Global-norm gradient clipping; 0 = off.

  config.reward = ml_collections.ConfigDict()
  config.reward.kind = "task"  # Reward source: task (programmatic), model (JAX reward model), remote (HTTP).
  config.reward.task = "addition"  # Task whose graded reward kind=task returns.
  config.reward.batch_size = 64  # Pairs per device call (model) or HTTP request (remote).
  config.reward.nonfinite = "drop"  # NaN/inf reward: drop the response (reported) or fail the round.
  config.reward.checkpoint = ""  # kind=model: directory written by --mode=train_reward_model.
  config.reward.tokenizer = ""  # kind=model: the reward model's tokenizer .model; "" = embedded.
  config.reward.url = ""  # kind=remote: endpoint, e.g. http://host:8000/score (eva_jax.rewards.serve).
  config.reward.api_key_env = ""  # kind=remote: NAME of the env variable with a bearer token; "" = none.
  config.reward.max_concurrency = 4  # kind=remote: requests in flight at once.
  config.reward.timeout_s = 60.0  # kind=remote: seconds before a request times out.
  config.reward.max_retries = 5  # kind=remote: retries on connect errors, timeouts, 429 and 5xx.
  config.reward.backoff_s = 0.5  # kind=remote: first retry delay; doubles on each retry.
  return config
