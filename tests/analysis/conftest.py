"""The session's tiny eva run, shared with tests/notebooks (made by executing notebooks/quickstart.ipynb)."""

import pytest

from tests.notebooks import nbrun


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
  return nbrun.tiny_run(tmp_path_factory)[0]
