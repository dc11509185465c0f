"""scripts/colab_install.py: the notebooks' Colab install keeps the runtime's TensorFlow and JAX.

The full check (EVA_COLAB_INSTALL_TEST=1; downloads about 1 GB from the package registry, 2.5 GB of
disk, ~5 minutes) builds a fresh virtualenv holding a *different* TensorFlow and JAX, as Colab does
(tensorflow 2.20, jax 0.8.3), runs the install script in it, checks that neither was replaced and
that no tensorflow-cpu was installed beside TensorFlow, and executes the quickstart notebook's tiny
path in that environment.
"""

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from tests.hang_guard import HANG_GUARD_S

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "colab_install.py"
COLAB_LIKE = ("tensorflow==2.20.0", "jax==0.8.3", "jaxlib==0.8.3", "pip")


def _run(*command, **kwargs):
  return subprocess.run(command, capture_output=True, text=True, timeout=HANG_GUARD_S, **kwargs)


def test_plan_keeps_the_installed_tensorflow_and_jax_and_installs_the_rest():
  result = _run(sys.executable, str(SCRIPT), "--dry-run", cwd=ROOT)
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  # This environment was built from the lock: tensorflow-cpu and jax are there, so they are kept.
  assert "colab_install: keeping the runtime's tensorflow-cpu 2.21.0" in lines
  assert "colab_install: keeping the runtime's jax 0.12.0.1" in lines
  pins = sum(1 for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line)
  assert f"colab_install: installing {pins - 3} pinned packages (--no-deps) and eva_jax" in lines


@pytest.mark.skipif(os.environ.get("EVA_COLAB_INSTALL_TEST") != "1", reason="set EVA_COLAB_INSTALL_TEST=1")
def test_install_into_a_colab_like_environment_then_run_the_notebook(tmp_path):
  base = getattr(sys, "_base_executable", sys.executable)  # .venv has no uv; bootstrap ran it from here
  has_uv = _run(base, "-m", "uv", "--version").returncode == 0
  uv = [base, "-m", "uv"] if has_uv else [shutil.which("uv") or "uv"]
  env_dir = tmp_path / "colab"
  python = str(env_dir / "bin" / "python")
  assert _run(*uv, "venv", "-q", "--python", base, str(env_dir)).returncode == 0
  installed = _run(*uv, "pip", "install", "-q", "--python", python, *COLAB_LIKE)
  assert installed.returncode == 0, installed.stderr
  result = _run(python, str(SCRIPT), cwd=ROOT)
  assert result.returncode == 0, result.stdout + result.stderr
  assert "colab_install: keeping the runtime's tensorflow 2.20.0" in result.stdout
  assert "colab_install: ready: jax 0.8.3 (cpu), tensorflow 2.20.0" in result.stdout
  versions = _run(
    python, "-c", "import importlib.metadata as m; print([d.metadata['Name'] for d in m.distributions()])"
  ).stdout
  assert "tensorflow-cpu" not in versions and "'tensorflow'" in versions
  # The quickstart notebook's tiny path, executed in that environment's kernel.
  code = (
    "import sys; sys.path.insert(0, '.')\n"
    "from tests.notebooks import nbrun\n"
    "nb = nbrun.execute('quickstart', EVA_NOTEBOOK_SIZE='tiny', EVA_RUN_DIR=sys.argv[1])\n"
    "errors = [o for c in nb.cells for o in c.get('outputs', []) if o['output_type'] == 'error']\n"
    "print('errors', len(errors), 'finished', 'finished 2 rounds' in nbrun.text_of(nb))"
  )
  executed = _run(python, "-c", code, str(tmp_path / "run"), cwd=ROOT)
  assert executed.returncode == 0, executed.stdout[-3000:] + executed.stderr[-3000:]
  assert "errors 0 finished True" in executed.stdout
