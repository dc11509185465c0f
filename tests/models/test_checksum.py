"""Checksums of saved params: equal under any sharding, changed by any flipped or swapped element."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from eva_jax.models import checksum


def _tree():
  rng = np.random.default_rng(0)
  return {
    "w": jnp.asarray(rng.normal(size=(16, 8)), jnp.float32),
    "b": jnp.asarray(rng.normal(size=(8,)), jnp.bfloat16),
    "step": jnp.asarray(7, jnp.int32),
  }


@pytest.mark.devices(8)
def test_the_checksum_is_the_same_however_the_tree_is_sharded():
  tree = _tree()
  mesh = jax.make_mesh((4, 2), ("a", "b"), devices=jax.devices()[:8])
  sharded = dict(tree, w=jax.device_put(tree["w"], jax.NamedSharding(mesh, jax.P("a", "b"))))
  assert len(sharded["w"].sharding.device_set) == 8
  assert checksum.tree_checksum(sharded) == checksum.tree_checksum(tree)
  host = jax.tree.map(np.asarray, tree)  # numpy leaves (a restore without a target) give the same figures
  assert checksum.tree_checksum(host) == checksum.tree_checksum(tree)


def test_a_flipped_bit_a_swap_and_nan_are_found():
  tree = _tree()
  sums = checksum.tree_checksum(tree)
  checksum.verify(tree, sums, "t")
  bits = np.asarray(tree["w"]).view(np.uint32).copy()
  bits[3, 5] ^= 1 << 7
  flipped = dict(tree, w=jnp.asarray(bits.view(np.float32)))
  with pytest.raises(checksum.CheckpointDamaged, match=r"t is damaged: 1 array\(s\) differ .*'w'"):
    checksum.verify(flipped, sums, "t")
  swapped = np.asarray(tree["w"]).copy()
  swapped[[0, 1]] = swapped[[1, 0]]
  assert checksum.tree_checksum(dict(tree, w=jnp.asarray(swapped)))["['w']"][0] == sums["['w']"][0]
  with pytest.raises(checksum.CheckpointDamaged):
    checksum.verify(dict(tree, w=jnp.asarray(swapped)), sums, "t")
  nan = dict(tree, b=tree["b"].at[2].set(jnp.nan))
  with pytest.raises(checksum.CheckpointDamaged, match=r"NaN/inf in 1 array\(s\), first \['b'\]"):
    checksum.verify(nan, None, "t")
  with pytest.raises(checksum.CheckpointDamaged, match="differ from the saved list"):
    checksum.verify({"w": tree["w"]}, sums, "t")
