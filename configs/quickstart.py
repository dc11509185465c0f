"""The quickstart: the tiny Gemma-architecture model and the embedded task, on CPU.

    make quickstart
    # = python -m eva_jax.main --config=configs/quickstart.py --workdir=/tmp/eva_quickstart

Hardware: any CPU; about 4 minutes on 2 cores after the one-time install (each offline round
about 30 s plus compilation). Runs eva end to end from the shipped base model
(eva_jax/models/base_model.py): seed pool, seven offline rounds (sample 6, score, creator, DPO + NLL
+ rehearsal), held-out evaluation per difficulty bucket after every round and a `headline` in
summary.json. `configs/quickstart_rloo.py` is the online variant.
"""

import ml_collections

from eva_jax.parallel import partition


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  del arg
  config = ml_collections.ConfigDict()
  config.seed = 0  # PRNG seed for init and for every sampled quantity downstream.
  # The embedded task: seed prompts, graded reward, evolution operators and held-out set. The
  # sections' own `task` fields ("" = this one) may override it; "" here = no task (real models).
  # addition_lsb writes operands least-significant digit first, like the answer: the shipped base
  # reads that format, and in it training on its own right answers lifts the frontier (RESULTS.md).
  config.task = "addition_lsb"

  config.model = ml_collections.ConfigDict()
  # Architecture (docs/models.md): tiny, tiny_gemma3, small, gemma2_{2b,9b,27b}, gemma3_{270m,1b,4b,12b,27b}.
  config.model.name = "tiny"
  config.model.param_dtype = "float32"  # Param dtype: float32 or bfloat16.
  # Gemma checkpoint directory: the gemma library's orbax format or a Hugging Face one (config.json +
  # safetensors), told apart by content; "" = model.init.
  config.model.checkpoint = ""
  # Without a checkpoint: base (the embedded task's shipped base model, tiny; eva_jax/models/base_model.py)
  # or random (then loop.warmstart_steps of SFT make a starting model).
  config.model.init = "base"
  # Sentencepiece .model path; "" = a Hugging Face checkpoint's own tokenizer.model, else the embedded one.
  config.model.tokenizer = ""
  config.model.logprob_chunk = 128  # Sequence columns unembedded at once in log-prob computations.

  config.mesh = ml_collections.ConfigDict()
  config.mesh.shape = dict(data=-1, fsdp=1, tensor=1)  # Devices per mesh axis; -1 fills.
  config.mesh.rules = partition.DEFAULT_RULES  # (logical axis, mesh axis) pairs for params.

  config.check = ml_collections.ConfigDict()
  config.check.num_problems = 8  # Task problems the model check scores.

  # The solver (eva_jax/solver): loss, batching and optimizer. The paper's DPO settings are beta
  # 0.05, lr 5e-7, batch 64, 2 epochs; the tiny model learns on CPU with a larger lr.
  # The eva loop (eva_jax/loop): offline rounds from the base (or from an SFT warm start: model.init=random).
  config.loop = ml_collections.ConfigDict()
  config.loop.mode = "offline"  # offline: rounds of sampling, creator, DPO-family epochs; online: RLOO.
  config.loop.rounds = 7  # eva rounds.
  # Where each round's prompts come from: evolve (eva); baselines: static (creator off), subset (the
  # informative prompts only, no evolving), fresh (new seed-distribution prompts instead of evolved).
  config.loop.prompts = "evolve"
  config.loop.num_samples = 6  # Responses sampled per prompt (paper: 6).
  config.loop.temperature = 0.7  # Sampling temperature (paper: 0.7).
  config.loop.top_p = 0.9  # Nucleus sampling (paper: 0.9).
  config.loop.max_new_tokens = 16  # Response token limit when sampling.
  config.loop.sample_batch_size = 64  # Prompts per sampler call.
  config.loop.max_cache_length = 128  # KV-cache length: prompt + response tokens.
  # Share of a round's training pairs from its old prompts (paper: 0.2). The whole pool is sampled
  # every round, so its still-informative old prompts carry pairs for free; 0.7 uses most of them
  # (frontier gain over seeds 0-3: +0.12 vs +0.06 at 0.2; RESULTS.md).
  config.loop.old_fraction = 0.7
  config.loop.min_gap = 0.0  # A pair needs best - worst reward above this.
  # ... and its chosen response to score at least this: -inf = off (the paper); 1.0 = exact answers only.
  config.loop.min_chosen_reward = 1.0
  # Old prompts with no pair (all responses tie) add (best, best) rows that only the NLL term trains
  # on: rehearsal of mastered prompts, so frontier pairs do not shift easy ones (not in the paper).
  config.loop.rehearse = True
  config.loop.max_train_pairs = 0  # Pairs a round trains on at most, drawn at random; 0 = all of them.
  config.loop.warmstart_steps = (
    0  # SFT steps on seed-difficulty reference answers (0 = none; the base is trained).
  )
  config.loop.warmstart_batch_size = 64  # SFT batch size.
  config.loop.warmstart_learning_rate = 3e-3  # SFT peak learning rate (cosine, 5% warmup).
  config.loop.checkpoint_keep = 2  # Run checkpoints kept.
  config.loop.steps = 200  # online: RLOO steps (solver.loss = "rloo").
  config.loop.draw = (
    "weighted"  # online: prompts drawn by informativeness, uniform, or dapo (skip flat groups).
  )
  config.loop.creator_every_steps = 20  # online: the creator evolves the pool every this many steps.
  config.loop.checkpoint_every_steps = 50  # online: checkpoint interval in steps.

  config.solver = ml_collections.ConfigDict()
  config.solver.loss = "dpo"  # dpo, cdpo, ipo, simpo, orpo, sppo (offline) or rloo (online).
  config.solver.beta = 0.1  # KL anchor (DPO/cDPO/IPO/SPPO/RLOO) or reward scale (SimPO/ORPO).
  config.solver.label_smoothing = 0.0  # cDPO: assumed probability a preference label is flipped.
  config.solver.simpo_gamma = 0.5  # SimPO: target reward margin.
  config.solver.orpo_lambda = 0.1  # ORPO: weight of the odds-ratio term next to the NLL (TRL's `beta`).
  config.solver.ipo_per_token = True  # IPO: log-ratios averaged per token (TRL, eva authors); False: sums.
  config.solver.nll_weight = 1.0  # Chosen-response NLL added to DPO-family losses (0 = paper).
  config.solver.rloo_k = 4  # RLOO: samples per prompt.
  config.solver.clip_eps = 0.0  # RLOO: token-level importance clipping; 0 = plain REINFORCE.
  config.solver.updates_per_batch = 1  # RLOO: optimizer steps per sampled batch (> 1 needs clip_eps).
  config.solver.batch_size = 8  # Pairs (offline) or prompts x rloo_k rows (RLOO) per optimizer step.
  config.solver.micro_batches = 1  # Gradient-accumulation micro-batches per step.
  config.solver.epochs = 2  # Epochs over each round's pairs.
  config.solver.max_prompt_len = 64  # Prompt tokens, chat template included.
  config.solver.max_response_len = 32  # Response tokens.
  # Consecutive optimizer steps with a non-finite loss or gradient (each skipped) that stop the run
  # with the last finite loss; the checkpoint before stays the newest.
  config.solver.max_nonfinite_steps = 10
  config.solver.optimizer = ml_collections.ConfigDict()
  config.solver.optimizer.name = "adamw"  # adamw, rmsprop (the eva authors' SPPO runs) or sgd.
  config.solver.optimizer.learning_rate = 2e-4  # Peak learning rate (5e-4 at batch 32 costs easy buckets).
  config.solver.optimizer.schedule = "cosine"  # cosine, linear or constant after warmup.
  config.solver.optimizer.warmup_frac = 0.1  # Fraction of steps of linear warmup from 0.
  config.solver.optimizer.weight_decay = 0.0  # AdamW decoupled weight decay.
  config.solver.optimizer.b1 = 0.9  # Adam beta1.
  config.solver.optimizer.b2 = 0.999  # Adam beta2 / RMSprop decay.
  config.solver.optimizer.eps = 1e-8  # Adam / RMSprop epsilon.
  config.solver.optimizer.max_grad_norm = 1.0  # Global-norm gradient clipping; 0 = off.

  config.reward = ml_collections.ConfigDict()
  config.reward.kind = "task"  # Reward source: task (programmatic), model (JAX reward model), remote (HTTP).
  # Task whose reward kind=task returns; "" = config.task. *_exact (1 exact, else 0) lets the
  # creator's gap tell learnable prompts (some of n right) from hopeless ones; held-out stays graded.
  config.reward.task = "addition_lsb_exact"
  config.reward.batch_size = 64  # Pairs per device call (model) or HTTP request (remote).
  config.reward.nonfinite = "drop"  # NaN/inf reward: drop the response (reported) or fail the round.
  config.reward.checkpoint = ""  # kind=model: directory written by --mode=train_reward_model.
  config.reward.tokenizer = ""  # kind=model: the reward model's tokenizer .model; "" = embedded.
  config.reward.url = ""  # kind=remote: endpoint, e.g. http://host:8000/score (eva_jax.jobs.serve_rewards).
  # kind=remote: the server's wire format (eva_jax/rewards/protocols.py): eva (eva_jax.jobs.serve_rewards,
  # .../score), vllm (`vllm serve` of a reward model, .../classify or .../pooling) or openrlhf (.../get_reward).
  config.reward.protocol = "eva"
  config.reward.model = ""  # kind=remote, protocol=vllm: the served model's name; "" = the server's default.
  # kind=remote, protocol=openrlhf: chat template of the texts sent: gemma, llama3, chatml or "...{prompt}...{response}...".
  config.reward.query_template = "gemma"
  config.reward.api_key_env = ""  # kind=remote: NAME of the env variable with a bearer token; "" = none.
  config.reward.max_concurrency = 4  # kind=remote: requests in flight at once.
  config.reward.timeout_s = 60.0  # kind=remote: seconds before a request times out.
  config.reward.max_retries = 5  # kind=remote: retries on connect errors, timeouts, 429 and 5xx.
  config.reward.backoff_s = 0.5  # kind=remote: first retry delay; doubles on each retry.

  config.creator = ml_collections.ConfigDict()
  config.creator.info_metric = "gap"  # gap, maxmean, var, mean, mean_inv, gap_inv, dts or uniform.
  config.creator.selection = "importance_weighted"  # Also greedy (top-k), stratified (deciles), uniform.
  config.creator.sample_frac = 0.25  # Fraction of the scored pool drawn for evolution (paper: 0.25).
  config.creator.num_evolutions = 4  # Chained rewrites per drawn prompt, child i the parent of i+1; all kept.
  config.creator.evolver = "task"  # task (the task's own operators) or llm (rewriting by an LLM).
  config.creator.task = ""  # Task whose operators evolver=task uses; "" = config.task.
  # Evolution method -> weight (drawn per rewrite); {} = uniform over the evolver's methods. The task's
  # methods: add_digit, add_operand, remove_digit (in depth); rephrase, resample (in breadth). The LLM
  # evolver's: add_constraints, deepen, concretize, increase_reasoning, expand (in depth); persona,
  # shift_in_domain, shift_out_of_domain, mix, abstract (in breadth). Easier and same-difficulty steps
  # keep the pool near the solver's frontier.
  config.creator.methods = dict(
    add_digit=0.25, add_operand=0.0, remove_digit=0.2, rephrase=0.15, resample=0.4
  )

  config.creator.filters = ml_collections.ConfigDict()  # Paper-faithful: all off (bounds 0).
  config.creator.filters.dedup_exact = True  # Drop a new prompt whose text is already in the pool.
  config.creator.filters.dedup_normalised = True  # ... or equal after NFKC, case folding, whitespace.
  config.creator.filters.drop_empty = True  # Drop empty or whitespace-only prompts.
  config.creator.filters.drop_bad_chars = True  # Drop control chars, U+FFFD, text not encodable as UTF-8.
  config.creator.filters.min_tokens = 1  # Drop prompts with fewer solver tokens; 0 = no bound.
  config.creator.filters.max_tokens = 64  # Drop prompts with more solver tokens; 0 = no bound.
  config.creator.filters.user_filter = ""  # "package.module:function", keeps a prompt if function(text).

  config.creator.llm = ml_collections.ConfigDict()  # Used when evolver = "llm".
  config.creator.llm.backend = "openai"  # gemma (our sampler, solver's model) or openai (HTTP endpoint).
  config.creator.llm.temperature = 0.88  # Rewrite sampling temperature (paper: 0.88).
  config.creator.llm.top_p = 1.0  # Nucleus sampling; 1.0 = off.
  config.creator.llm.max_new_tokens = 666  # Rewrite token limit (paper: 666).
  config.creator.llm.drop_truncated = True  # Drop rewrites cut at max_new_tokens.
  config.creator.llm.base_url = ""  # openai: endpoint, e.g. http://host:8000/v1 (vLLM) or Gemini's.
  config.creator.llm.model = ""  # openai: the served model's name.
  config.creator.llm.api_key_env = "OPENAI_API_KEY"  # openai: NAME of the env var with the key; "" = none.
  config.creator.llm.max_concurrency = 8  # openai: requests in flight.
  config.creator.llm.requests_per_second = 4.0  # openai: request starts per second; 0 = unlimited.
  config.creator.llm.max_retries = 4  # openai: retries on 429, 5xx, timeouts, connection errors.
  config.creator.llm.timeout_s = 120.0  # openai: seconds per attempt.
  config.creator.llm.batch_size = 32  # gemma: meta-prompts per device call.
  config.creator.llm.max_cache_length = 2048  # gemma: meta-prompt + rewrite tokens per row.

  config.pool = ml_collections.ConfigDict()
  config.pool.dir = ""  # Prompt pool (one TFDS dataset per generation); "" = <workdir>/pool; gs:// works.
  # Generation 0 from: task, jsonl, csv, parquet (a file or a directory of them), hf_disk (a directory
  # written by Hugging Face `save_to_disk`) or tfds (a dataset directory).
  config.pool.seed_source = "task"
  config.pool.seed_path = ""  # The seed file or directory (every source but task).
  config.pool.seed_field = "prompt"  # JSON key, column or TFDS feature: a string or a chat (1st user turn).
  config.pool.seed_split = "train"  # tfds, hf_disk (a DatasetDict): the split to read.
  config.pool.num_seeds = 256  # task: prompts drawn; files: keep the first N (0 = all).
  config.pool.on_malformed = "skip"  # Malformed seed lines: skip (count, log line numbers) or fail.
  config.pool.max_size = 512  # Prompts kept per generation, least informative dropped first; 0 = all.

  # Evaluation (eva_jax/evaluation): held-out reward, win rate against a reference policy judged by the
  # reward source, exact match per difficulty bucket, and answer files for the public benchmarks.
  config.eval = ml_collections.ConfigDict()
  config.eval.every_rounds = 1  # Evaluate after every k-th round and the last one; 0 = only in --mode=eval.
  config.eval.task = ""  # Task whose held-out set and exact-match report are used; "" = config.task.
  config.eval.per_bucket = 100  # Held-out task prompts per difficulty bucket (fixed set, easy to hard).
  config.eval.prompts_path = ""  # JSONL/CSV of held-out prompts instead of the task's; "" = the task's.
  config.eval.prompts_field = "prompt"  # JSON key or CSV column holding each held-out prompt.
  config.eval.reference = "round0"  # Win-rate reference: round0 (start params), a checkpoint dir, "" = none.
  config.eval.num_samples = 1  # Responses per held-out prompt, paired sample by sample with the reference's.
  config.eval.temperature = 0.0  # Eval sampling temperature; 0 = greedy (paper's sampling: 0.7).
  config.eval.top_p = 1.0  # Eval nucleus sampling; 1.0 = off (paper's sampling: 0.9).
  config.eval.max_new_tokens = 24  # Eval response token limit.
  config.eval.max_cache_length = 128  # Eval prompt + response tokens per row.
  config.eval.batch_size = 128  # Held-out prompts per sampler call.
  config.eval.bootstrap = 1000  # Bootstrap resamples of the prompts for confidence intervals; 0 = none.
  config.eval.confidence = 0.95  # Confidence level of the intervals.
  config.eval.tie_tolerance = 0.0  # |policy - reference reward| <= this counts as a tie (half a win).
  config.eval.seed = 0  # Seed of eval sampling and of the bootstrap.

  config.eval.export = ml_collections.ConfigDict()  # Benchmark answers; a benchmark runs if its file is set.
  config.eval.export.dir = ""  # Output directory; "" = <workdir>/benchmarks.
  config.eval.export.model_id = "eva_jax"  # Model name in the answer files and their file names.
  config.eval.export.arena_hard_questions = ""  # Arena-Hard question.jsonl (you provide it); "" = skip.
  config.eval.export.mt_bench_questions = ""  # MT-Bench (FastChat) question.jsonl; "" = skip.
  config.eval.export.alpaca_eval_instructions = ""  # AlpacaEval JSON list of {"instruction", ...}; "" = skip.
  config.eval.export.category_temperatures = False  # Use FastChat's per-category temperatures (MT-Bench).
  config.eval.export.temperature = 0.0  # Answer temperature; 0 = greedy (paper's sampling: 0.7).
  config.eval.export.top_p = 1.0  # Answer nucleus sampling; 1.0 = off (paper's sampling: 0.9).
  config.eval.export.max_new_tokens = (
    256  # Answer tokens per turn, Arena-Hard and AlpacaEval (real models: 4096).
  )
  config.eval.export.mt_bench_max_new_tokens = (
    0  # MT-Bench answer tokens per turn; 0 = max_new_tokens (FastChat: 1024).
  )
  config.eval.export.max_cache_length = 1024  # Prompt (with earlier turns) + answer tokens per row.
  config.eval.export.batch_size = 32  # Questions per sampler call.
  # A question too long for the cache next to its answer: truncate (from the left, counted), skip (listed), fail.
  config.eval.export.long_prompts = "truncate"
  return config
