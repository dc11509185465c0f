"""`--mode=train_reward_model`: Bradley-Terry training of a reward model on the configured mesh.

It builds `config.model` as the backbone (from its Gemma checkpoint, or random init) with a fresh
scalar head, makes synthetic preference pairs from `config.reward_model.task`, trains with the jitted
AdamW step, reports held-out pairwise accuracy (overall and per corruption) before and after, and
writes the reward model to `<workdir>/reward_model` (orbax params + metadata + the run's config).
It then loads that checkpoint back through the "model" reward source and checks it scores the
held-out pairs exactly as the trained params did. Figures go to `<workdir>/reward_model_train.json`.

Multi-host: every process runs the same steps on the global mesh (each feeds only its own devices'
rows of a batch) and takes part in the collective orbax save; process 0 alone removes an old
checkpoint, writes the JSON files and prints.
"""

import json
import time

from etils import epath
import jax
import ml_collections
import numpy as np
import tqdm

from eva_jax import config as config_lib
from eva_jax.models import architectures
from eva_jax.models import batching
from eva_jax.models import params as params_lib
from eva_jax.models import tokenizer as tokenizer_lib
from eva_jax.parallel import distributed
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.rewards import bradley_terry
from eva_jax.rewards import model_source
from eva_jax.rewards import preferences
from eva_jax.rewards import reward_model
from eva_jax.rewards.config import TrainingConfig
from eva_jax.tasks import get_task

CHECKPOINT_DIR = "reward_model"
FIGURES_FILE = "reward_model_train.json"


def _say(text: str) -> None:
  if distributed.is_main_process():
    print(text)


def pairwise_accuracy(source, pairs: preferences.PreferencePairs) -> dict[str, float]:
  """Share of pairs whose chosen response out-scores the rejected one (ties count as wrong), by corruption."""
  rewards = source.score(pairs.prompts * 2, pairs.chosen + pairs.rejected)
  right = rewards[: len(pairs)] > rewards[len(pairs) :]
  kinds = np.asarray(pairs.corruption)
  out = {"accuracy": float(right.mean())}
  for kind in sorted(set(pairs.corruption)):
    out[f"accuracy_{kind}"] = float(right[kinds == kind].mean())
  return out


def _epoch_batches(num: int, batch_size: int, steps: int, seed: int):
  """Index arrays for `steps` batches: shuffled epochs (an epoch's last partial batch is skipped)."""
  rng = np.random.default_rng(seed)
  order = rng.permutation(num)
  for _ in range(steps):
    if len(order) < batch_size:
      order = rng.permutation(num)
    yield order[:batch_size]
    order = order[batch_size:]


def run(
  cfg: config_lib.RunConfig,
  train: TrainingConfig,
  workdir: epath.PathLike,
  config_dict: ml_collections.ConfigDict | None = None,
) -> dict:
  """Trains, evaluates, saves and reloads a reward model; returns the figures (also written to disk)."""
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  mesh = mesh_lib.make_mesh(dict(zip(mesh_lib.AXES, cfg.mesh.shape)))
  shards = mesh.shape["data"] * mesh.shape["fsdp"]
  if train.batch_size % shards:
    raise ValueError(
      f"config.reward_model.batch_size={train.batch_size} must be a multiple of data x fsdp = {shards}"
    )
  tokenizer = tokenizer_lib.load_tokenizer(cfg.model.tokenizer_kind, cfg.model.tokenizer or None)
  model = architectures.build_model(cfg.model.name, cfg.model.param_dtype)
  optimizer = bradley_terry.make_optimizer(train)
  step_fn, param_shardings, opt_shardings = bradley_terry.jitted_train_step(
    model, optimizer, mesh, cfg.mesh.rules
  )
  backbone = None
  if cfg.model.checkpoint:
    backbone = params_lib.load_gemma_checkpoint(
      cfg.model.checkpoint, model, param_shardings["backbone"], name=cfg.model.name
    )
  params = reward_model.init_params(model, jax.random.key(cfg.seed), param_shardings, backbone)
  opt_state = jax.jit(optimizer.init, out_shardings=opt_shardings)(params)

  task = get_task(train.task)
  train_pairs, eval_pairs = preferences.train_and_eval_pairs(
    task, train.corruptions, train.train_pairs, train.eval_pairs, cfg.seed
  )
  # Chosen and rejected rows are encoded together, so they share columns.
  data = batching.make_batch(tokenizer, train_pairs.prompts * 2, train_pairs.chosen + train_pairs.rejected)
  num = len(train_pairs)
  if num < train.batch_size:
    raise ValueError(
      f"{num} training pairs cannot fill a batch of config.reward_model.batch_size={train.batch_size}"
    )
  _say(
    f"reward model {cfg.model.name} on mesh {dict(mesh.shape)}: {num} training pairs ({data.tokens.shape[1]} "
    f"columns), {len(eval_pairs)} held-out pairs of task {task.name!r}, corruptions {list(train.corruptions)}"
  )
  source = model_source.ModelRewardSource(
    model, params, tokenizer, mesh, cfg.mesh.rules, train.batch_size, False
  )
  before = pairwise_accuracy(source, eval_pairs)

  place = partition.batch_sharding(mesh)
  losses = []
  batches = _epoch_batches(num, train.batch_size, train.steps, cfg.seed)
  with tqdm.tqdm(batches, total=train.steps, desc="reward model", unit="step") as bar:
    for index in bar:
      batch = (
        data.tokens[index],
        data.input_mask[index],
        data.tokens[num + index],
        data.input_mask[num + index],
      )
      params, opt_state, metrics = step_fn(params, opt_state, tuple(jax.device_put(a, place) for a in batch))
      losses.append(float(metrics["loss"]))
      bar.set_postfix(loss=f"{losses[-1]:.4f}", acc=f"{float(metrics['accuracy']):.2f}")

  source.params = params
  after = pairwise_accuracy(source, eval_pairs)
  trained_scores = source.score(eval_pairs.prompts, eval_pairs.chosen)
  ckpt = workdir / CHECKPOINT_DIR
  if ckpt.exists() and distributed.is_main_process():
    ckpt.rmtree()
  distributed.barrier("reward_model_old_checkpoint_removed")
  reward_model.save(ckpt, params, cfg.model.name, cfg.model.param_dtype)
  if config_dict is not None and distributed.is_main_process():
    (ckpt / "config.json").write_text(config_dict.to_json_best_effort(indent=1))
  distributed.barrier("reward_model_saved")
  loaded = model_source.load_model_source(
    ckpt,
    tokenizer_path=cfg.model.tokenizer,
    mesh=mesh,
    rules=cfg.mesh.rules,
    batch_size=train.batch_size,
    progress=False,
  )
  reload_equal = bool(np.array_equal(loaded.score(eval_pairs.prompts, eval_pairs.chosen), trained_scores))
  loaded.close()
  if not reload_equal:
    raise RuntimeError(f"reward model reloaded from {ckpt} scores differently from the trained params")

  window = max(1, min(10, len(losses) // 2))
  figures = {
    "train_pairs": num,
    "eval_pairs": len(eval_pairs),
    "steps": train.steps,
    "loss_first": float(np.mean(losses[:window])),
    "loss_last": float(np.mean(losses[-window:])),
    **{f"{k}_before": v for k, v in before.items()},
    **after,
    "reload_equal": reload_equal,
    "checkpoint": str(ckpt),
    "seconds": time.perf_counter() - start,
  }
  if distributed.is_main_process():
    (workdir / FIGURES_FILE).write_text(json.dumps(figures, indent=1))
  _say(f"{'held-out pairs':<24} {'before':>8} {'after':>8}")
  for key in after:
    _say(f"{key:<24} {before[key]:8.3f} {after[key]:8.3f}")
  _say(
    f"loss {figures['loss_first']:.4f} -> {figures['loss_last']:.4f}; reward model written to {ckpt} and "
    f"reloaded with identical scores; done in {figures['seconds']:.1f}s; figures in {workdir / FIGURES_FILE}\n"
    f"use it: --config.reward.kind=model --config.reward.checkpoint={ckpt}"
  )
  return figures
