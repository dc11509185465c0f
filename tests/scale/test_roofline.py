"""Roofline estimates from per-device counts: which phase bounds a step, and the MFU it leaves."""

import pytest

from eva_jax.scale import roofline


def test_each_phase_can_bound_the_step():
  v5p = roofline.CHIPS["v5p"]
  # 459 TFLOP on v5p: one second of compute; nothing else.
  compute = roofline.estimate(459e12, 0.0, {}, "v5p")
  assert compute.seconds == pytest.approx(1.0) and compute.bound == "compute" and compute.mfu == 1.0
  # Twice as long reading HBM: memory-bound at 50% MFU.
  memory = roofline.estimate(459e12, 2 * v5p.hbm_gb_s * 1e9, {}, "v5p")
  assert (
    memory.bound == "memory" and memory.seconds == pytest.approx(2.0) and memory.mfu == pytest.approx(0.5)
  )
  # An all-reduce moves about twice its result; other collectives their result.
  collectives = {"all-reduce": {"count": 3, "bytes": 600e9}, "all-gather": {"count": 1, "bytes": 1200e9}}
  assert roofline.collective_bytes(collectives) == pytest.approx(2400e9)
  network = roofline.estimate(459e12, 0.0, collectives, "v5p")
  assert (
    network.bound == "network"
    and network.seconds == pytest.approx(4.0)
    and network.mfu == pytest.approx(0.25)
  )
  assert network.chip_hours(steps=900, devices=8) == pytest.approx(8.0)


def test_faster_chips_are_faster_and_unknown_chips_are_named():
  counts = (1e15, 1e12, {"all-gather": {"count": 1, "bytes": 1e10}})
  times = {chip: roofline.estimate(*counts, chip).seconds for chip in roofline.CHIPS}
  assert times["v6e"] < times["v5e"] and times["h200"] <= times["h100"] and times["v5p"] < times["v4"]
  with pytest.raises(ValueError, match="unknown chip 'v7'"):
    roofline.estimate(*counts, "v7")
