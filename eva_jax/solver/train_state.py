"""The solver's train state: params, optimizer state, step (and the RLOO reference) as one pytree.

The optimizer state is always float32, also for bfloat16 params: moments of bf16 gradients lose
the small updates post-training makes (lr 5e-7). Updates are computed in float32 and cast to the
param dtype when applied.
"""

import flax
import jax
import jax.numpy as jnp
import optax

from eva_jax.parallel import partition


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: optimizer steps taken
  total_steps: jax.Array  # int32 scalar: steps the learning-rate schedule spans (data, so no re-jit)
  params: dict  # the gemma params (inner dict), sharded
  opt_state: optax.OptState  # float32, sharded like the params
  ref_params: dict | None = None  # frozen reference for in-step KL (RLOO); None for offline losses


def as_float32(tree):
  return jax.tree.map(lambda x: x.astype(jnp.float32), tree)


def state_shardings(optimizer: optax.GradientTransformation, param_shardings, mesh, with_ref: bool = False):
  """The `NamedSharding` tree of a `TrainState`: optimizer moments are sharded like their params."""
  # Only the tree structure matters to tree_map_params; shapes are placeholders.
  abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct((1,), jnp.float32), param_shardings)
  opt_abstract = jax.eval_shape(optimizer.init, abstract)
  replicated = partition.replicated(mesh)
  opt_shardings = optax.tree_map_params(
    optimizer,
    lambda _, sharding: sharding,
    opt_abstract,
    param_shardings,
    transform_non_params=lambda _: replicated,
  )
  return TrainState(
    step=replicated,
    total_steps=replicated,
    params=param_shardings,
    opt_state=opt_shardings,
    ref_params=param_shardings if with_ref else None,
  )


def create_train_state(
  params, optimizer: optax.GradientTransformation, shardings: TrainState, *, total_steps: int, ref_params=None
) -> TrainState:
  """A fresh state around `params` for a run of `total_steps` optimizer steps, placed in `shardings`.

  The state takes ownership of `params` (no copy: the first step donates them), so keep a copy if
  you need the old values. `ref_params` (RLOO) is always copied into a buffer of its own.
  """

  def init(params, ref_params):
    return TrainState(
      step=jnp.zeros((), jnp.int32),
      total_steps=jnp.asarray(total_steps, jnp.int32),
      params=params,
      opt_state=optimizer.init(as_float32(params)),
      ref_params=jax.tree.map(jnp.copy, ref_params),
    )

  return jax.jit(init, out_shardings=shardings)(params, ref_params)
