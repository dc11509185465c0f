"""What an online checkpoint holds besides the params: the RLOO TrainState and the pool's scores.

An online run saves its whole TrainState (params, optimizer moments, step, reference) every
`checkpoint_every_steps` steps, plus each pool prompt's reward statistics at that step in the
checkpoint's JSON metadata (`run_state.RunCheckpoints`), so a resumed run draws the next step's
prompts from the same weights it would have without the stop.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp

from eva_jax.creator import records as records_lib
from eva_jax.solver import optim
from eva_jax.solver import train_state


def abstract_state(state_shardings, optimizer, params):
  """Restore target of the online TrainState: shapes and dtypes of a fresh state, in its shardings."""
  shapes = jax.eval_shape(
    lambda p: train_state.TrainState(
      step=jnp.zeros((), jnp.int32),
      total_steps=jnp.zeros((), jnp.int32),
      params=p,
      opt_state=optimizer.init(train_state.as_float32(p)),
      ref_params=p,
    ),
    params,
  )
  return jax.tree.map(
    lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), shapes, state_shardings
  )


def checkpoint_target(cfg, param_shardings, mesh, params):
  """The abstract train state (shapes, dtypes, shardings) an online checkpoint restores into."""
  optimizer = optim.make_optimizer(cfg.solver.optimizer)
  shardings = train_state.state_shardings(optimizer, param_shardings, mesh, with_ref=True)
  return abstract_state(shardings, optimizer, params)


def pool_stats(records) -> list[list[float | None]]:
  """The reward statistics of `records` (STAT_FIELDS per record, None for NaN) for a checkpoint's metadata."""
  return [
    [None if math.isnan(v) else v for v in (getattr(r, f) for f in records_lib.STAT_FIELDS)] for r in records
  ]


def with_pool_stats(records, stats) -> list:
  """`records` with the statistics `pool_stats` saved; the step-by-step scores a resumed run continues from."""
  if len(stats) != len(records):
    raise ValueError(
      f"checkpointed pool statistics cover {len(stats)} prompts, the pool generation {len(records)}"
    )
  fields = records_lib.STAT_FIELDS
  return [
    dataclasses.replace(r, **{f: math.nan if v is None else v for f, v in zip(fields, row)})
    for r, row in zip(records, stats)
  ]
