"""Roofline estimates of a compiled program's time on a target chip, from XLA's own counts.

`bench.scale_check` compiles each program of a run for a fake device mesh
(`scale.compile_check`); this module turns its per-device counts into what the program would
take on real chips, before anyone pays for them:

    compute  = FLOPs / the chip's dense bf16 peak
    memory   = bytes accessed / HBM bandwidth
    network  = collective bytes / one direction of the chip's interconnect (an all-reduce moves
               about twice its result, the other collectives about their result)

The estimate is the largest of the three (perfect overlap: a lower bound on the time), the bound
is the phase that sets it, and `mfu` = compute / estimate is the best share of peak the program
can reach there. Chip-hours for a whole round multiply by the steps and the devices.

Caveats, said where the figures are printed: XLA:CPU's cost analysis counts the FLOPs and bytes
of the program as compiled for the host (fusion differs from a TPU's, so `memory` is rough); a
while loop's body is counted once in its FLOPs and bytes (bench.scale_check's collectives are per
call: loop bodies times their known trip counts; the decode loop's count is data-dependent, so a
generate program's figures are its prefill plus one decode step); XLA:CPU computes bfloat16 in
float32, so its collective and memory bytes can be up to 2x a TPU's; and link contention and
collective latency are ignored.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Chip:
  """Published per-chip figures (one JAX device per chip: TPU v4/v5p run their two cores as one)."""

  bf16_tflops: float  # dense peak
  hbm_gb_s: float  # HBM bandwidth
  ici_gb_s: float  # interconnect bandwidth per chip, one direction (ICI, or NVLink for GPUs)
  source: str


# Cloud TPU system-architecture pages (v4, v5e, v5p, v6e) and NVIDIA's H100 SXM / H200 data sheets.
# Bidirectional figures are halved; v4's interconnect is not on its page (TPU v4 paper, ISCA 2023:
# six 50 GB/s links; taken as 300 GB/s, rough).
CHIPS = {
  "v4": Chip(275.0, 1200.0, 300.0, "cloud.google.com/tpu/docs/v4; ICI from the TPU v4 paper (rough)"),
  "v5e": Chip(197.0, 819.0, 200.0, "cloud.google.com/tpu/docs/v5e (ICI 400 GB/s bidirectional)"),
  "v5p": Chip(459.0, 2765.0, 600.0, "cloud.google.com/tpu/docs/v5p (ICI 4800 Gbps)"),
  "v6e": Chip(918.0, 1638.0, 400.0, "cloud.google.com/tpu/docs/v6e (ICI 800 GB/s bidirectional)"),
  "h100": Chip(989.0, 3350.0, 450.0, "NVIDIA H100 SXM data sheet (NVLink 900 GB/s bidirectional)"),
  "h200": Chip(989.0, 4800.0, 450.0, "NVIDIA H200 SXM data sheet (NVLink 900 GB/s bidirectional)"),
}


def collective_bytes(collectives: dict) -> float:
  """Bytes one device sends for `compile_check.hlo_collectives`' {kind: {"count", "bytes"}}."""
  total = 0.0
  for kind, figures in collectives.items():
    total += (2.0 if kind == "all-reduce" else 1.0) * float(figures["bytes"])
  return total


@dataclasses.dataclass(frozen=True)
class Estimate:
  chip: str
  compute_s: float
  memory_s: float
  network_s: float

  @property
  def seconds(self) -> float:
    return max(self.compute_s, self.memory_s, self.network_s)

  @property
  def bound(self) -> str:
    phases = {"compute": self.compute_s, "memory": self.memory_s, "network": self.network_s}
    return max(phases, key=phases.get)

  @property
  def mfu(self) -> float:
    return self.compute_s / self.seconds if self.seconds > 0 else 0.0

  def chip_hours(self, steps: int, devices: int) -> float:
    return self.seconds * steps * devices / 3600.0


def estimate(flops: float, bytes_accessed: float, collectives: dict, chip: str) -> Estimate:
  """The roofline of one program on `chip` (a CHIPS key) from per-device FLOPs, bytes and collectives."""
  if chip not in CHIPS:
    raise ValueError(f"unknown chip {chip!r}; known: {sorted(CHIPS)}")
  spec = CHIPS[chip]
  return Estimate(
    chip=chip,
    compute_s=flops / (spec.bf16_tflops * 1e12),
    memory_s=bytes_accessed / (spec.hbm_gb_s * 1e9),
    network_s=collective_bytes(collectives) / (spec.ici_gb_s * 1e9),
  )
