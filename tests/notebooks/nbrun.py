"""Runs the notebooks with nbclient, and makes the tiny eva run that the notebook and analysis tests read.

The tiny run is made by executing `notebooks/quickstart.ipynb` itself (EVA_NOTEBOOK_SIZE=tiny): one real
run serves both test folders. It happens once per pytest session, whichever folder asks first; the
executed notebook is kept next to the run, so the second folder (its own session fixture) reuses it.
"""

import os
import pathlib
import sys

import nbclient
import nbformat
from tests.hang_guard import HANG_GUARD_S

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT_S = HANG_GUARD_S  # the tiny run's cell, on a shared 2-core machine
INLINE = "module://matplotlib_inline.backend_inline"  # headless; figures come back as image/png outputs


def execute(name: str, **env: str) -> nbformat.NotebookNode:
  """Executes `notebooks/<name>.ipynb` in a python3 kernel of this interpreter, cwd the repo root.

  The kernel gets this process's environment (XLA_FLAGS etc. from tests/conftest.py) plus `env`.
  Raises nbclient's CellExecutionError (with the cell's traceback) when a cell fails.
  """
  nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
  path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
  environ = os.environ | {"PATH": path, "MPLBACKEND": INLINE} | env
  client = nbclient.NotebookClient(
    nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}
  )
  client.execute(env=environ)
  return nb


def text_of(nb: nbformat.NotebookNode) -> str:
  """Everything the cells printed or returned as text, in order."""
  parts = []
  for cell in nb.cells:
    for out in cell.get("outputs", []):
      if out["output_type"] == "stream":
        parts.append(out["text"])
      elif "data" in out and "text/plain" in out["data"]:
        parts.append(out["data"]["text/plain"])
  return "".join(parts)


def images(nb: nbformat.NotebookNode) -> int:
  """How many PNG figures the cells displayed."""
  return sum("image/png" in out.get("data", {}) for cell in nb.cells for out in cell.get("outputs", []))


def tiny_run(tmp_path_factory) -> tuple[pathlib.Path, nbformat.NotebookNode]:
  """(workdir, executed quickstart notebook) of the session's tiny run."""
  base = tmp_path_factory.getbasetemp() / "eva_tiny_run"
  executed, failed = base / "quickstart.executed.ipynb", base / "failed.txt"
  if failed.exists():
    raise RuntimeError(f"the tiny run failed earlier in this session:\n{failed.read_text()}")
  if not executed.exists():
    base.mkdir(parents=True, exist_ok=True)
    try:
      nb = execute("quickstart", EVA_RUN_DIR=str(base / "run"), EVA_NOTEBOOK_SIZE="tiny")
    except Exception as e:
      failed.write_text(str(e))
      raise
    nbformat.write(nb, executed)
  return base / "run", nbformat.read(executed, as_version=4)
