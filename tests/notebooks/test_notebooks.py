"""Both notebooks run end to end with nbclient on a real tiny run, and are committed without outputs."""

import json

import nbformat
import pytest

from eva_jax.analysis import curriculum
from tests.notebooks import nbrun

NAMES = ("quickstart", "curriculum")


def _errors(nb):
  return [out for cell in nb.cells for out in cell.get("outputs", []) if out["output_type"] == "error"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebooks_are_clean(name):
  nb = nbformat.read(nbrun.NOTEBOOKS / f"{name}.ipynb", as_version=4)
  nbformat.validate(nb)
  code = [cell for cell in nb.cells if cell.cell_type == "code"]
  assert all(cell.outputs == [] and cell.execution_count is None for cell in code)
  assert 'if "google.colab" in sys.modules:' in code[0].source and "REPO_URL = " in code[0].source
  assert 'scripts" / "colab_install.py"' in code[0].source  # keeps Colab's TensorFlow and JAX
  assert 'WORKDIR = os.environ.get("EVA_RUN_DIR", "/tmp/eva_quickstart")' in code[1].source
  assert nb.metadata.kernelspec.name == "python3"


def test_quickstart_runs_the_tiny_run_and_shows_before_after(tiny_run):
  workdir, nb = tiny_run
  assert not _errors(nb)
  text = nbrun.text_of(nb)
  assert "tiny run: 2 rounds, 60 warm-start steps" in text
  assert "finished 2 rounds" in text
  summary = json.loads((workdir / "summary.json").read_text())
  assert [r["round"] for r in summary["rounds"]] == [0, 1, 2]
  # The notebook's table is exactly what the analysis module reads back from the run here.
  table = curriculum.Run(workdir).before_after()
  columns = ["bucket", "exact_before", "exact_after", "reward_before", "reward_after"]
  assert "held-out evaluation: round 0 (warm start) vs round 2" in text
  assert curriculum.text_table(table, columns) in text
  assert nbrun.images(nb) == 2


def test_curriculum_plots_the_tiny_run(tiny_run):
  workdir, _ = tiny_run
  nb = nbrun.execute("curriculum", EVA_RUN_DIR=str(workdir))
  assert not _errors(nb)
  text = nbrun.text_of(nb)
  run = curriculum.Run(workdir)
  sizes = curriculum.text_table(
    run.pool_sizes(),
    ["generation", "prompts", "new", "seeds", "evolved", "scored", "reward_mean", "info_mean", "depth_mean"],
  )
  assert sizes in text
  assert curriculum.text_table(run.rewards_by_round()) in text
  for tree in run.lineage_trees(count=3):
    assert f"{tree['seed']} {tree['text']!r}" in text
  assert "most informative:" in text and "least informative:" in text
  assert nbrun.images(nb) == 8  # pool, info, rewards, methods, lineage, extremes, difficulty, curves
