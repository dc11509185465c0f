#!/usr/bin/env bash
# Runs eva_jax on this machine's NVIDIA GPUs: builds .venv if needed (scripts/bootstrap.sh), adds
# the CUDA build of jax (the `cuda` extra) when it is missing, and runs `python -m eva_jax.main`
# with JAX_PLATFORMS=cuda, so a missing or broken CUDA set-up fails loudly instead of falling
# back to the CPU.
#
#   launch/gpu.sh --config=configs/gemma2_9b.py --workdir=/tmp/eva_gpu [more eva_jax.main flags]
#
# Variables:
#   VENV     the virtual environment to use (default .venv in the repo)
#   UV       the uv command (default: `uv` on PATH, else `python3.12 -m uv` as bootstrap installs it)
#   DRY_RUN  1 = print the commands instead of running them
# Several GPU hosts: run this on each with --coordinator_address=HOST0:PORT --num_processes=N
# --process_id=I (or the EVA_* variables; see eva_jax/parallel/distributed.py).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
DRY_RUN="${DRY_RUN:-0}"
cd "$ROOT"

run() {
  if [[ "$DRY_RUN" == 1 ]]; then
    echo "$*"
  else
    "$@"
  fi
}

if [[ ! -x "$VENV/bin/python" ]]; then
  run bash scripts/bootstrap.sh
fi
# The cuda extra brings the jax CUDA plugin; bootstrap's lock has the CPU build only.
if ! "$VENV/bin/python" -c 'import jax_cuda12_plugin' >/dev/null 2>&1; then
  if [[ -z "${UV:-}" ]]; then
    if command -v uv >/dev/null 2>&1; then
      UV=uv
    else
      UV="python3.12 -m uv"
    fi
  fi
  echo "gpu.sh: installing the CUDA build of jax into $VENV with $UV" >&2
  read -r -a uv_cmd <<<"$UV"
  run "${uv_cmd[@]}" pip install --python "$VENV/bin/python" -e '.[cuda]'
fi
run env JAX_PLATFORMS=cuda "$VENV/bin/python" -m eva_jax.main "$@"
