#!/usr/bin/env bash
# The GPU check: run on a machine with an NVIDIA GPU after `make test` has built .venv.
#
#   bash scripts/gpu_check.sh            # figures also land in $OUT/gpu_check.json if OUT is set
#
# 1. installs the `cuda` extra into .venv: jax[cuda12] at the lock's jax version (the lock pins CPU jax);
# 2. checks that JAX sees a GPU;
# 3. runs the sampler and solver tests on it (JAX_PLATFORMS=cuda; tests that need several devices
#    skip on one GPU);
# 4. runs bench.gpu: DPO / RLOO steps and sampling in bfloat16 for the `small` model and a
#    gemma2_2b-architecture random init, with tokens/s and MFU against the GPU's bf16 peak.
# Exits non-zero on the first failure. Undo with `make test` (bootstrap re-syncs the lock's CPU jax).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || { echo "gpu_check: no .venv; run 'make test' first" >&2; exit 1; }
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

PY=$(sed -n 's/^home = //p' .venv/pyvenv.cfg)/python3.12
[ -x "$PY" ] || PY=python3.12
JAX_VERSION=$(sed -n 's/^jax==//p' requirements.lock)
echo "gpu_check: installing jax[cuda12]==$JAX_VERSION into .venv" >&2
"$PY" -m uv pip install --quiet --python .venv/bin/python "jax[cuda12]==$JAX_VERSION"

export JAX_PLATFORMS=cuda TF_CPP_MIN_LOG_LEVEL=2
.venv/bin/python -c "
import jax
assert jax.default_backend() == 'gpu', jax.default_backend()
print('gpu_check: devices', jax.devices())
"
.venv/bin/python -m pytest -q -x tests/sampling tests/solver
OUT_DIR=${OUT:-/tmp}
.venv/bin/python -m bench.gpu | tee "$OUT_DIR/gpu_check.txt"
tail -n 1 "$OUT_DIR/gpu_check.txt" > "$OUT_DIR/gpu_check.json"
echo "gpu_check: passed; figures in $OUT_DIR/gpu_check.json" >&2
