"""The session's tiny eva run (made by executing notebooks/quickstart.ipynb; see nbrun.py)."""

import pytest

from tests.notebooks import nbrun


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
  """(workdir, executed quickstart notebook)."""
  return nbrun.tiny_run(tmp_path_factory)
