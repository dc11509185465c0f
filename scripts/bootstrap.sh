#!/usr/bin/env bash
# Creates or updates .venv from requirements.lock with uv and installs eva_jax editable.
# Called by `make` when the lock or setup.py changed; safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  local candidate
  for candidate in python3.12 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 /usr/local/bin/python3.12 /usr/bin/python3.12; do
    if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

PY=$(find_python) || { echo "bootstrap: Python 3.12 not found (gemma 4 needs it); install python3.12 and retry" >&2; exit 1; }
if ! "$PY" -m uv --version >/dev/null 2>&1; then
  echo "bootstrap: installing uv for $PY" >&2
  "$PY" -m pip install --quiet uv
fi
[ -x .venv/bin/python ] || "$PY" -m uv venv --quiet --python "$PY" .venv
# --python: `python -m uv` would otherwise target the interpreter it runs from.
"$PY" -m uv pip sync --quiet --python .venv/bin/python requirements.lock
"$PY" -m uv pip install --quiet --python .venv/bin/python --no-deps -e .
touch .venv/.stamp
echo "bootstrap: .venv ready ($(.venv/bin/python --version))" >&2
