"""The device mesh: axes for data, fsdp and tensor parallelism, sized from config (-1 = fill).

Batches are split over ("data", "fsdp"); params are split over "fsdp" and "tensor" by the
partition rules (`partition.py`). The same code builds a 1-device mesh on a laptop CPU, 8 fake CPU
devices in tests, and a TPU pod slice.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import math

import jax
from jax.experimental import mesh_utils
import numpy as np

AXES = ("data", "fsdp", "tensor")
BATCH_AXES = ("data", "fsdp")


def resolve_mesh_shape(shape: Mapping[str, int], num_devices: int) -> tuple[int, ...]:
  """Sizes for `AXES` from `shape` (missing axes = 1, one -1 = whatever is left).

  Raises:
    ValueError: naming the axis when the shape is impossible for `num_devices`.
  """
  unknown = set(shape) - set(AXES)
  if unknown:
    raise ValueError(f"unknown mesh axes {sorted(unknown)}; allowed: {list(AXES)}")
  sizes = [int(shape.get(axis, 1)) for axis in AXES]
  fill = [axis for axis, size in zip(AXES, sizes) if size == -1]
  bad = [axis for axis, size in zip(AXES, sizes) if size == 0 or size < -1]
  if bad:
    raise ValueError(f"mesh axis {bad[0]!r} must be a positive size or -1 (fill)")
  if len(fill) > 1:
    raise ValueError(f"only one mesh axis may be -1 (fill); got {fill}")
  fixed = math.prod(size for size in sizes if size != -1)
  if num_devices % fixed:
    raise ValueError(
      f"mesh {dict(zip(AXES, sizes))} needs a multiple of {fixed} devices; there are {num_devices}"
    )
  if fill:
    sizes[AXES.index(fill[0])] = num_devices // fixed
  elif fixed != num_devices:
    raise ValueError(
      f"mesh {dict(zip(AXES, sizes))} uses {fixed} devices; there are {num_devices} (use -1 to fill)"
    )
  return tuple(sizes)


def make_mesh(shape: Mapping[str, int], devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
  """A `Mesh` over `devices` (default: all) with `AXES` sized by `resolve_mesh_shape`."""
  devices = list(jax.devices() if devices is None else devices)
  sizes = resolve_mesh_shape(shape, len(devices))
  try:  # Topology-aware placement on TPU/GPU; plain reshape where that does not apply.
    grid = mesh_utils.create_device_mesh(sizes, devices=devices)
  except (AssertionError, NotImplementedError, ValueError):
    grid = np.asarray(devices).reshape(sizes)
  return jax.sharding.Mesh(grid, AXES)
