"""Checksums of saved parameter trees, so a damaged checkpoint is found on restore, not trained on.

A leaf's checksum is two 32-bit integers over the raw bits of its elements: their sum and their
sum weighted by position (1-based flat index), both modulo 2**32. Integer sums are exact, so the
figures are the same however the array is sharded, on any number of devices or hosts, and cheap
(one pass over the params, on device). A flipped byte changes the plain sum; a swap of elements
changes the weighted one. Float leaves are also checked for NaN/inf: a params tree is never saved
with them (`train.skipped_nonfinite` skips such updates), so one in a restored tree is damage.
"""

from collections.abc import Mapping
import functools

import jax
import jax.numpy as jnp
import numpy as np

_UINT = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}


class CheckpointDamaged(ValueError):
  """A restored tree does not match the checksum saved with it, or holds NaN/inf."""


def _leaf_bits(x: jax.Array) -> jax.Array:
  """The element bits as uint32 (8-byte elements as two words each)."""
  size = jnp.dtype(x.dtype).itemsize
  if size == 8:
    return jax.lax.bitcast_convert_type(x, jnp.uint32).reshape(x.shape + (2,))
  if x.dtype == jnp.bool_:
    return x.astype(jnp.uint32)
  return jax.lax.bitcast_convert_type(x, _UINT[size]).astype(jnp.uint32)


def _leaf_figures(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  bits = _leaf_bits(x)
  index = jnp.zeros(bits.shape, jnp.uint32)
  stride = 1
  for dim in reversed(range(bits.ndim)):
    index = index + jax.lax.broadcasted_iota(jnp.uint32, bits.shape, dim) * jnp.uint32(stride % 2**32)
    stride *= bits.shape[dim]
  finite = jnp.all(jnp.isfinite(x)) if jnp.issubdtype(x.dtype, jnp.inexact) else jnp.bool_(True)
  return jnp.sum(bits, dtype=jnp.uint32), jnp.sum(bits * (index + 1), dtype=jnp.uint32), finite


@functools.partial(jax.jit)
def _tree_figures(tree):
  return jax.tree.map(_leaf_figures, tree)


def _paths(tree) -> list[str]:
  return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def _figures(tree) -> tuple[dict[str, list[int]], list[str]]:
  if not jax.tree.leaves(tree):
    return {}, []
  arrays = jax.tree.map(lambda x: x if isinstance(x, jax.Array) else jnp.asarray(x), tree)
  figures = jax.tree.leaves(_tree_figures(arrays), is_leaf=lambda x: isinstance(x, tuple))
  sums, bad = {}, []
  for path, (plain, weighted, finite) in zip(_paths(tree), figures, strict=True):
    sums[path] = [int(np.asarray(plain)), int(np.asarray(weighted))]
    if not bool(np.asarray(finite)):
      bad.append(path)
  return sums, bad


def tree_checksum(tree) -> dict[str, list[int]]:
  """{leaf path: [sum of bits, position-weighted sum of bits]} (JSON-ready), identical under any sharding."""
  return _figures(tree)[0]


def verify(tree, expected: Mapping[str, list[int]] | None, what: str) -> None:
  """Raises CheckpointDamaged naming `what` and the first bad leaf; `expected` None = finiteness only."""
  sums, nonfinite = _figures(tree)
  if nonfinite:
    raise CheckpointDamaged(f"{what} is damaged: NaN/inf in {len(nonfinite)} array(s), first {nonfinite[0]}")
  if expected is None:
    return
  if set(expected) != set(sums):
    missing = sorted(set(expected) ^ set(sums))
    raise CheckpointDamaged(f"{what} is damaged: its arrays differ from the saved list (e.g. {missing[0]})")
  wrong = [path for path in sums if list(expected[path]) != sums[path]]
  if wrong:
    raise CheckpointDamaged(
      f"{what} is damaged: {len(wrong)} array(s) differ from the checksum saved with them, first {wrong[0]}"
    )
