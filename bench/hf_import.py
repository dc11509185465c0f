"""Host memory of a Hugging Face checkpoint import, against its size and a whole-file read.

Writes a synthetic safetensors checkpoint of a real architecture (default gemma2_2b in bfloat16,
5.2 GB in 3 shards: every tensor at its real shape, values from a repeated random tile), then in
fresh subprocesses on 8 fake CPU devices (mesh fsdp=8):

- ours: `params.load_gemma_checkpoint` (one gemma param at a time, placed per shard);
- baseline: `safetensors.numpy.load_file` of every shard, the whole checkpoint in host memory
  (what a loader that reads everything before placing it holds at its peak).

Reported per process: peak RSS above the RSS just before loading. On a CPU the params' device
buffers live in host memory too, so ours is split into the params themselves and the transient
beyond them, which is what stays bounded by the largest param (the embedding). `--tiny` uses the
tiny model (figures mean nothing; the contract test).
"""

import argparse
import json
import math
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import ml_dtypes
import numpy as np

SHARD_BYTES = 2 * 10**9

CHILD = r"""
import json, os, sys, time
os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=8"
os.environ.setdefault("JAX_PLATFORMS", "cpu")
import jax
from safetensors import numpy as safetensors_numpy
from eva_jax.models import architectures, params as params_lib
from eva_jax.parallel import mesh as mesh_lib

def status(key):
  for line in open("/proc/self/status"):
    if line.startswith(key + ":"):
      return int(line.split()[1]) * 1024
mode, path, name = sys.argv[1:4]
model = architectures.build_model(name, "bfloat16")
shardings = params_lib.shardings_for(model, mesh_lib.make_mesh({"fsdp": 8}))
before = status("VmRSS")
start = time.perf_counter()
if mode == "ours":
  params = params_lib.load_gemma_checkpoint(path, model, shardings, name=name)
  jax.block_until_ready(params)
  held = sum(x.nbytes for x in jax.tree.leaves(params))
else:
  tensors = {}
  for file in sorted(os.listdir(path)):
    if file.endswith(".safetensors"):
      tensors.update(safetensors_numpy.load_file(os.path.join(path, file)))
  held = sum(x.nbytes for x in tensors.values())
seconds = time.perf_counter() - start
print(json.dumps({"before": before, "peak": status("VmHWM"), "held": held, "seconds": seconds}))
"""


def write_checkpoint(name: str, path: pathlib.Path) -> tuple[int, int]:
  """A synthetic checkpoint of architecture `name`; returns (total bytes, largest tensor bytes)."""
  from safetensors import numpy as safetensors_numpy

  from eva_jax.models import architectures
  from eva_jax.models import hf_export
  from eva_jax.models import hf_format

  arch = architectures.ARCHITECTURES[name]
  config = architectures.build_model(name).config
  rules = hf_format.tensor_rules(config)
  shapes = {n: (s, 2) for r in rules.values() for n, s in zip(r.hf_names, r.hf_shapes)}
  shards = hf_export.shard_plan(shapes, SHARD_BYTES)
  names = hf_export._file_names(len(shards))  # noqa: SLF001  (the same file names as an export)
  tile = (np.random.RandomState(0).standard_normal(1 << 20) * 0.02).astype(ml_dtypes.bfloat16)
  weight_map = {}
  for file, shard in zip(names, shards):
    tensors = {}
    for tensor in shard:
      size = math.prod(shapes[tensor][0])
      tensors[tensor] = np.resize(tile, size).reshape(shapes[tensor][0])
    safetensors_numpy.save_file(tensors, str(path / file), metadata={"format": "pt"})
    weight_map.update(dict.fromkeys(shard, file))
  if len(names) > 1:
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
  special = {"bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0}
  (path / "config.json").write_text(
    json.dumps(hf_format.make_config(config, arch.family, dtype="bfloat16", special_ids=special))
  )
  sizes = [math.prod(s) * b for s, b in shapes.values()]
  return sum(sizes), max(sizes)


def measure(mode: str, path: pathlib.Path, name: str) -> dict:
  root = pathlib.Path(__file__).resolve().parent.parent
  result = subprocess.run(
    [sys.executable, "-c", CHILD, mode, str(path), name],
    cwd=root,
    capture_output=True,
    text=True,
    check=False,
  )
  if result.returncode:
    raise SystemExit(f"{mode} import failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="gemma2_2b")
  parser.add_argument("--quick", action="store_true", help="gemma3_1b (2.0 GB)")
  parser.add_argument("--tiny", action="store_true", help="the tiny model (contract test)")
  args = parser.parse_args()
  name = "tiny" if args.tiny else "gemma3_1b" if args.quick else args.model
  with tempfile.TemporaryDirectory(prefix="eva_hf_import_") as tmp:
    path = pathlib.Path(tmp)
    start = time.perf_counter()
    total, largest = write_checkpoint(name, path)
    write_s = time.perf_counter() - start
    ours, whole = measure("ours", path, name), measure("whole", path, name)
  gb = 1e9
  ours_above = ours["peak"] - ours["before"]
  figures = {
    "model": name,
    "checkpoint_gb": total / gb,
    "largest_tensor_gb": largest / gb,
    "write_s": write_s,
    "ours_peak_above_start_gb": ours_above / gb,
    "ours_params_gb": ours["held"] / gb,
    "ours_transient_gb": (ours_above - ours["held"]) / gb,
    "ours_s": ours["seconds"],
    "whole_peak_above_start_gb": (whole["peak"] - whole["before"]) / gb,
    "whole_s": whole["seconds"],
  }
  figures["transient_over_checkpoint"] = figures["ours_transient_gb"] / figures["checkpoint_gb"]
  figures["whole_over_checkpoint"] = figures["whole_peak_above_start_gb"] / figures["checkpoint_gb"]
  print(
    f"synthetic {name} checkpoint: {figures['checkpoint_gb']:.2f} GB (largest tensor {figures['largest_tensor_gb']:.2f})"
  )
  print(f"{'reader':<28} {'peak RSS above start':>22} {'seconds':>8}")
  print(
    f"{'ours (params + transient)':<28} {figures['ours_peak_above_start_gb']:>18.2f} GB {figures['ours_s']:>8.1f}"
  )
  print(f"{'  of which params':<28} {figures['ours_params_gb']:>18.2f} GB")
  print(f"{'  of which transient':<28} {figures['ours_transient_gb']:>18.2f} GB")
  print(
    f"{'whole-file read (baseline)':<28} {figures['whole_peak_above_start_gb']:>18.2f} GB {figures['whole_s']:>8.1f}"
  )
  print(json.dumps(figures))
  return figures


if __name__ == "__main__":
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  main()
