"""The paper's main setting: offline eva with DPO on gemma-2-9b-it (Ye et al. 2024, Table 1).

    python -m eva_jax.main --config=configs/gemma2_9b_dpo.py --workdir=gs://BUCKET/eva_dpo \
      --config.model.checkpoint=/ckpts/gemma2-9b-it --config.model.tokenizer=/ckpts/tokenizer.model \
      --config.pool.seed_source=jsonl --config.pool.seed_path=/data/ultrafeedback_prompts.jsonl \
      --config.reward.url=http://rm-host:8000/score \
      --config.creator.llm.base_url=https://generativelanguage.googleapis.com/v1beta/openai/ \
      --config.creator.llm.model=gemini-1.5-pro --config.creator.llm.api_key_env=GEMINI_API_KEY

Paper settings (../shared/DESIGN.md): n=6 responses at temperature 0.7 / top-p 0.9 up to 2048
tokens; pointwise reward model (ArmoRM, served: `eva_jax.jobs.serve_rewards` or your own server);
informativeness `gap`, 25% of the pool drawn weighted, 4 chained EvolInstruct rewrites by an LLM
(temperature 0.88, <= 666 tokens); pairs best vs worst, 20% old / 80% new; DPO beta 0.05, lr 5e-7,
cosine with 10% warmup, 2 epochs, batch 64, prompt <= 1024 and response <= 1024 tokens; prompt
filters off. SPPO, SimPO, ORPO are one override away, e.g. `--config.solver.loss=sppo
--config.solver.beta=0.001 --config.solver.optimizer.name=rmsprop`.

Hardware: a v5e-64 / v5p-32 slice or larger (see `--mode=plan`). Required fields (nothing is
downloaded): the checkpoint and tokenizer paths, the seed prompt file, the reward server URL and the
evolver endpoint. `--config=configs/gemma2_9b_dpo.py:runlocal` shrinks everything to the tiny model
and the embedded task, to check the wiring on a CPU in a minute.
"""

from eva_jax import config_files

gemma2_9b = config_files.sibling(__file__, "gemma2_9b")


def paper_settings(config):
  """Fields shared by the DPO and RLOO paper configs."""
  config.loop.num_samples = 6  # n responses per prompt.
  config.loop.temperature = 0.7  # Sampling temperature.
  config.loop.top_p = 0.9  # Nucleus sampling.
  config.loop.max_new_tokens = 1024  # Response tokens when sampling (solver.max_response_len).
  config.loop.max_cache_length = 2048  # Prompt (<= 1024) + response tokens.
  config.model.logprob_chunk = 256  # Unembed 256 of the 1,024 response columns at a time.
  config.loop.sample_batch_size = 256  # Prompts per sampler call (per host batch).
  config.loop.warmstart_steps = 0  # No SFT: gemma-2-9b-it is already instruction-tuned.
  config.loop.old_fraction = 0.2  # 20% old / 80% new pairs.
  config.loop.min_chosen_reward = float("-inf")  # Paper: any best response is chosen.
  # The quickstart's settings beyond the paper, each reset here: gemma2_9b.py starts from the
  # quickstart's fields, and tests/test_configs.py pins every one of these by value.
  config.loop.rehearse = False  # No (best, best) rehearsal rows for prompts without a pair.
  config.loop.min_gap = 0.0  # Any pair whose best beats its worst.
  config.loop.max_train_pairs = 0  # Every pair the round makes.
  config.loop.draw = "weighted"  # online: prompts drawn by informativeness.
  config.reward.task = ""  # No embedded task reward.
  config.creator.task = ""  # No embedded task operators.
  config.creator.filters.user_filter = ""  # No user filter.
  config.solver.micro_batches = 1  # One pass per step; raise it where the memory plan says so.
  config.solver.label_smoothing = 0.0  # Plain DPO (cDPO off).
  config.solver.optimizer.weight_decay = 0.0  # No weight decay.
  config.solver.optimizer.max_grad_norm = 1.0  # Global-norm clipping at 1 (TRL's default).
  config.loop.prompts = "evolve"  # eva.
  config.pool.seed_source = "jsonl"  # Required: seed prompts (e.g. UltraFeedback prompts), one per line.
  config.pool.seed_path = ""  # Required: the JSONL file.
  config.pool.num_seeds = 0  # All of them.
  config.pool.max_size = 0  # The paper keeps every prompt.
  config.reward.kind = "remote"  # Pointwise reward model served over HTTP (paper: ArmoRM-Llama3-8B).
  config.reward.url = ""  # Required: the reward server's /score URL.
  config.creator.info_metric = "gap"  # max - min of the n rewards.
  config.creator.selection = "importance_weighted"  # Weighted, without replacement.
  config.creator.sample_frac = 0.25  # 25% of the pool.
  config.creator.num_evolutions = 4  # 4 chained rewrites, all kept.
  config.creator.evolver = "llm"  # EvolInstruct-style rewriting by an LLM (paper: gemini-1.5-pro).
  config.creator.methods = {}  # Uniform over the in-depth and in-breadth methods.
  config.creator.llm.backend = "openai"  # An OpenAI-compatible endpoint.
  config.creator.llm.base_url = ""  # Required: the endpoint.
  config.creator.llm.model = ""  # Required: the rewriting model's name.
  config.creator.llm.temperature = 0.88  # Rewrite temperature.
  config.creator.llm.max_new_tokens = 666  # Rewrite token limit.
  for name in ("dedup_exact", "dedup_normalised", "drop_empty", "drop_bad_chars"):
    config.creator.filters[name] = False  # Paper-faithful: no prompt filters.
  config.creator.filters.min_tokens = 0  # No length bounds.
  config.creator.filters.max_tokens = 0
  config.solver.max_prompt_len = 1024  # Prompt tokens.
  config.solver.max_response_len = 1024  # Response tokens.
  config.solver.batch_size = 64  # Global batch.
  config.solver.nll_weight = 0.0  # Not in the paper.
  config.solver.optimizer.name = "adamw"  # AdamW.
  config.solver.optimizer.schedule = "cosine"  # Cosine decay.
  config.solver.optimizer.warmup_frac = 0.1  # 10% warmup.
  config.task = ""  # No embedded task: held-out prompts come from eval.prompts_path.
  config.eval.prompts_path = ""  # Required: held-out prompts (JSONL {"prompt": ...}).
  config.eval.max_new_tokens = 1024  # Held-out answer tokens.
  config.eval.max_cache_length = 2048  # Prompt + answer tokens.
  config.eval.every_rounds = 0  # Evaluate with --mode=eval (and the benchmark exports).
  # Benchmark answers at the benchmarks' own lengths: Arena-Hard's real questions reach ~9,100
  # characters (~2,300 tokens) and its answers 4,096 tokens; MT-Bench's (FastChat) 1,024 per turn.
  config.eval.export.max_new_tokens = 4096  # Arena-Hard / AlpacaEval answer tokens.
  config.eval.export.mt_bench_max_new_tokens = 1024  # FastChat's MT-Bench answer length.
  config.eval.export.max_cache_length = 8192  # Question (with earlier turns) + answer tokens.
  config.eval.export.batch_size = 16  # Questions per sampler call (the cache is 8x the loop's).
  return config


def runlocal(config):
  """The same wiring, shrunk to the tiny model, the embedded task's reward and evolver, on CPU."""
  config.model.name = "tiny"  # CPU-sized Gemma-2 architecture.
  config.model.param_dtype = "float32"
  config.model.checkpoint = ""  # No checkpoint: the shipped tiny base (config.model.init) instead.
  config.model.tokenizer = ""  # The embedded tokenizer.
  config.model.logprob_chunk = 128
  config.mesh.shape = dict(data=-1, fsdp=1, tensor=1)
  config.loop.rounds = 1
  config.loop.steps = 4
  config.loop.creator_every_steps = 2
  config.loop.num_samples = 4
  config.loop.max_new_tokens = 16
  config.loop.max_cache_length = 128
  config.loop.sample_batch_size = 16
  config.loop.warmstart_steps = 80
  config.loop.warmstart_batch_size = 16
  config.pool.seed_source = "task"
  config.pool.num_seeds = 16
  config.reward.kind = "task"
  config.creator.evolver = "task"
  config.creator.num_evolutions = 2
  config.solver.max_prompt_len = 64
  config.solver.max_response_len = 32
  config.solver.batch_size = 16 if config.solver.loss == "rloo" else 8
  config.solver.epochs = 1
  config.task = "addition_lsb"  # The embedded task (the shipped base's prompt format) for seeds, reward, evolver, held-out set.
  config.eval.every_rounds = 1
  config.eval.per_bucket = 1
  config.eval.export.max_new_tokens = 64
  config.eval.export.mt_bench_max_new_tokens = 0
  config.eval.export.max_cache_length = 512
  return config


def get_config(arg: str | None = None):
  config = paper_settings(gemma2_9b.get_config())
  config.loop.mode = "offline"  # Offline rounds.
  config.loop.rounds = 3  # The paper's iterations.
  config.solver.loss = "dpo"  # DPO.
  config.solver.beta = 0.05  # DPO beta.
  config.solver.epochs = 2  # Epochs per round.
  config.solver.optimizer.learning_rate = 5e-7  # Peak lr.
  return runlocal(config) if arg == "runlocal" else config
