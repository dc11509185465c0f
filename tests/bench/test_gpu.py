"""bench.gpu (run by scripts/gpu_check.sh on a GPU): its peak table and its contract, on the CPU."""

import json
import os
import pathlib
import subprocess
import sys

from bench import gpu
from tests.hang_guard import HANG_GUARD_S

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_chip_peaks_come_from_the_table_most_specific_first():
  assert gpu.chip_peak("NVIDIA H100 80GB HBM3") == (989.0, "table")
  assert gpu.chip_peak("NVIDIA H100 PCIe") == (756.0, "table")
  assert gpu.chip_peak("NVIDIA H200") == (989.0, "table")
  assert gpu.chip_peak("NVIDIA A100-SXM4-80GB") == (312.0, "table")
  assert gpu.chip_peak("NVIDIA L4") == (121.0, "table")


def test_tiny_run_prints_the_contract():
  command = [sys.executable, "-m", "bench.gpu", "--tiny"]
  env = dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
  result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=HANG_GUARD_S, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  figures = json.loads(result.stdout.splitlines()[-1])
  assert figures["device_kind"] == "cpu" and figures["peak_source"] == "measured"
  for key in ("dpo", "rloo", "sample"):
    # MFU over a peak measured on a shared CPU means little; it must only be a positive number.
    assert figures[f"tiny_{key}_tok_s"] > 0 and figures[f"tiny_{key}_mfu"] > 0
  assert figures["tiny_params"] == 804_480
