"""Installs eva_jax into a Colab-like runtime without replacing the TensorFlow and JAX it already has.

    python scripts/colab_install.py [--python PYTHON] [--dry-run]

The notebooks' first cell runs this in Colab (after cloning the repository). `requirements.lock`
pins CPU builds (tensorflow-cpu, jax/jaxlib for CPU): installed as they are they would sit next to
Colab's `tensorflow` (two distributions writing one package) and swap its accelerator JAX for a CPU
one. So this installs every pinned package *except* TensorFlow and JAX, with `--no-deps` (the lock
already lists every dependency, and no resolver may pull tensorflow-cpu back in), then eva_jax
itself, and leaves the runtime's TensorFlow and JAX alone when present (their lock pins are
installed only where none is). It prints what it kept and what it installed, then imports the stack
and prints the versions and JAX's backend. It needs uv (installed with pip if missing) and the
repository checkout it sits in.
"""

import argparse
import importlib.metadata
import pathlib
import re
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Lock entries the runtime's own builds replace; each group is kept if any of its names is installed.
KEPT_GROUPS = {
  "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"),
  "jax": ("jax",),
  "jaxlib": ("jaxlib",),
}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def _normal(name: str) -> str:
  return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(lock: pathlib.Path) -> dict[str, str]:
  """{normalised name: version} of every `name==version` line of a uv-compiled lock."""
  pins = {}
  for line in lock.read_text().splitlines():
    match = _PIN.match(line)
    if match:
      pins[_normal(match[1])] = match[2]
  return pins


def installed_version(name: str, python: str) -> str | None:
  if python == sys.executable:
    try:
      return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      return None
  code = (
    f"import importlib.metadata as m\ntry: print(m.version({name!r}))\nexcept m.PackageNotFoundError: pass"
  )
  out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
  return out or None


def plan(pins: dict[str, str], python: str) -> tuple[dict[str, str], dict[str, str]]:
  """(pins to install, {kept distribution: its installed version})."""
  kept = {}
  install = dict(pins)
  for names in KEPT_GROUPS.values():
    present = {n: v for n in names if (v := installed_version(n, python))}
    if present:
      kept.update(present)
      for name in names:
        install.pop(_normal(name), None)
  return install, kept


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--python", default=sys.executable, help="interpreter of the runtime to install into")
  parser.add_argument("--dry-run", action="store_true", help="print the plan, install nothing")
  args = parser.parse_args()
  install, kept = plan(lock_pins(ROOT / "requirements.lock"), args.python)
  for name, version in sorted(kept.items()):
    print(f"colab_install: keeping the runtime's {name} {version}")
  print(f"colab_install: installing {len(install)} pinned packages (--no-deps) and eva_jax")
  if args.dry_run:
    return 0
  uv = [args.python, "-m", "uv"]
  if subprocess.run([*uv, "--version"], capture_output=True).returncode:
    subprocess.run([args.python, "-m", "pip", "install", "-q", "uv"], check=True)
  with tempfile.NamedTemporaryFile("w", suffix=".txt") as requirements:
    requirements.write("".join(f"{name}=={version}\n" for name, version in sorted(install.items())))
    requirements.flush()
    pip = [*uv, "pip", "install", "-q", "--python", args.python, "--no-deps"]
    subprocess.run([*pip, "-r", requirements.name], check=True)
  subprocess.run([*pip, "-e", str(ROOT)], check=True)
  check = (
    "import os; os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')\n"
    "import jax, tensorflow as tf, tensorflow_datasets, gemma, eva_jax.main\n"
    "print(f'colab_install: ready: jax {jax.__version__} ({jax.default_backend()}), tensorflow {tf.__version__}')"
  )
  return subprocess.run([args.python, "-c", check]).returncode


if __name__ == "__main__":
  sys.exit(main())
