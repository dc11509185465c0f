"""The solver's phases inside a round: SFT (the warm start) and epochs of a DPO-family loss on pairs.

Each phase starts a fresh optimizer state whose schedule spans exactly its steps (the paper restarts
the DPO schedule every round) and pads every batch to `batch_size` rows. The schedule's length is
data in the train state and the preference step is memoised per settings, so a run compiles one
program per sequence-length bucket, not one per round. Reference log-probs of all pairs are computed once, with the params
the phase starts from, before the first step (that step donates those params).
"""

from collections.abc import Callable
from collections.abc import Sequence
import functools
import math

import jax
import numpy as np
import tqdm

from eva_jax.models import batching
from eva_jax.solver import losses
from eva_jax.solver import nonfinite
from eva_jax.solver import optim
from eva_jax.solver import steps
from eva_jax.solver import train_state
from eva_jax.solver.config import SolverConfig

Ids = list[int]
MetricsFn = Callable[[int, dict], None]


def _pad_rows(batch, rows: int):
  extra = rows - batch.row_mask.shape[0]
  return jax.tree.map(lambda x: np.pad(x, [(0, extra)] + [(0, 0)] * (x.ndim - 1)), batch) if extra else batch


def _run_steps(step, state, batches, total: int, desc: str, on_metrics: MetricsFn | None, max_nonfinite: int):
  last = {}
  guard = nonfinite.NonfiniteGuard(max_nonfinite, desc)
  for i, batch in enumerate(tqdm.tqdm(batches, total=total, desc=desc, unit="step", leave=False)):
    state, metrics = step(state, batch, jax.random.key(i))
    last = {k: float(v) for k, v in jax.device_get(metrics).items()}
    guard.check(i, last)
    if on_metrics is not None:
      on_metrics(i, last)
  return state, last


def _setup(
  model, params, opt_cfg: optim.OptimizerConfig, total: int, mesh, param_shardings, num_micro, chunk
):
  optimizer = optim.make_optimizer(opt_cfg)
  shardings = train_state.state_shardings(optimizer, param_shardings, mesh)
  state = train_state.create_train_state(params, optimizer, shardings, total_steps=total)
  settings = steps.StepSettings(model, opt_cfg, shardings, mesh, num_micro=num_micro, chunk_size=chunk)
  return state, settings


@functools.lru_cache(maxsize=8)
def _cached_preference_step(model, opt_cfg, mesh, treedef, shardings, num_micro, chunk, loss, hparams, nll):
  settings = steps.StepSettings(
    model, opt_cfg, jax.tree.unflatten(treedef, shardings), mesh, num_micro=num_micro, chunk_size=chunk
  )
  return steps.make_preference_step(settings, loss, hparams, nll)


def preference_step(settings: steps.StepSettings, solver: SolverConfig):
  """`steps.make_preference_step` for these settings, built once and reused by every later round."""
  leaves, treedef = jax.tree.flatten(settings.state_shardings)
  return _cached_preference_step(
    settings.model,
    settings.opt_cfg,
    settings.mesh,
    treedef,
    tuple(leaves),
    settings.num_micro,
    settings.chunk_size,
    solver.loss,
    solver.preference,
    solver.nll_weight,
  )


def sft(
  model,
  params,
  tokenizer,
  prompts: Sequence[str],
  answers: Sequence[str],
  *,
  num_steps: int,
  batch_size: int,
  learning_rate: float,
  mesh,
  param_shardings,
  seed: int,
  chunk_size: int = 128,
  on_metrics: MetricsFn | None = None,
  max_nonfinite_steps: int = 10,
):
  """`num_steps` SFT steps on (prompt, answer) examples drawn in shuffled passes; returns (params, metrics)."""
  opt_cfg = optim.OptimizerConfig(learning_rate=learning_rate, warmup_frac=0.05, weight_decay=0.0)
  state, settings = _setup(model, params, opt_cfg, num_steps, mesh, param_shardings, 1, chunk_size)
  step = steps.make_sft_step(settings)
  rng = np.random.default_rng(seed)

  def batches():
    order = np.zeros(0, int)
    for _ in range(num_steps):
      if len(order) < batch_size:
        order = np.concatenate([order, rng.permutation(len(prompts))])
      take, order = order[:batch_size], order[batch_size:]
      tb = batching.make_batch(
        tokenizer, [prompts[i] for i in take], [answers[i] for i in take], length_multiple=16
      )
      yield steps.sequence_batch(tb)

  state, metrics = _run_steps(
    step, state, batches(), num_steps, "warm start (SFT)", on_metrics, max_nonfinite_steps
  )
  return state.params, metrics


def preference_epochs(
  model,
  params,
  prompt_ids: Sequence[Ids],
  chosen_ids: Sequence[Ids],
  rejected_ids: Sequence[Ids],
  *,
  solver: SolverConfig,
  mesh,
  param_shardings,
  seed: int,
  chunk_size: int = 128,
  on_metrics: MetricsFn | None = None,
  phase: str = "",
):
  """`solver.epochs` shuffled epochs of `solver.loss` over the pairs; returns (params, metrics).

  `phase` names the phase in progress output and errors (default "<loss> epochs")."""
  n, rows = len(prompt_ids), solver.batch_size
  if n == 0:
    raise ValueError("no preference pairs to train on")
  total = solver.epochs * math.ceil(n / rows)
  make = lambda idx: _pad_rows(
    steps.pair_batch_from_ids(
      [prompt_ids[i] for i in idx],
      [chosen_ids[i] for i in idx],
      [rejected_ids[i] for i in idx],
      length_multiple=16,
    ),
    rows,
  )
  ref = np.zeros((n, 2), np.float32)
  if solver.loss not in losses.REFERENCE_FREE:
    for begin in range(0, n, rows):
      idx = np.arange(begin, min(begin + rows, n))
      batch = steps.with_reference_logps(model, params, make(idx), mesh, chunk_size)
      ref[idx] = batch.ref_logps[: len(idx)]
  state, settings = _setup(
    model, params, solver.optimizer, total, mesh, param_shardings, solver.micro_batches, chunk_size
  )
  step = preference_step(settings, solver)
  rng = np.random.default_rng(seed)

  def batches():
    for _ in range(solver.epochs):
      order = rng.permutation(n)
      for begin in range(0, n, rows):
        idx = order[begin : begin + rows]
        batch = make(idx)
        yield batch.replace(ref_logps=np.pad(ref[idx], ((0, rows - len(idx)), (0, 0))))

  state, metrics = _run_steps(
    step, state, batches(), total, phase or f"{solver.loss} epochs", on_metrics, solver.max_nonfinite_steps
  )
  return state.params, metrics
