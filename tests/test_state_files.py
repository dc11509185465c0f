"""State files: a damaged JSON file is named in the error; a work directory is checked before use."""

import os

import pytest

from eva_jax import state_files


def test_a_cut_short_json_file_is_named(tmp_path):
  path = tmp_path / "summary.json"
  path.write_text('{"rounds": [{"round": 0, ')
  with pytest.raises(
    ValueError, match=r"summary.json: not valid JSON \(.* at line 1, column \d+\); the file is damaged"
  ):
    state_files.read_json(path)
  path.write_text('{"rounds": []}')
  assert state_files.read_json(path) == {"rounds": []}


def test_workdir_checks(tmp_path):
  assert state_files.check_workdir(tmp_path / "a" / "b").is_dir()
  (tmp_path / "file").write_text("x")
  with pytest.raises(ValueError, match="is a file, not a directory"):
    state_files.check_workdir(tmp_path / "file")
  if os.geteuid() == 0:
    pytest.skip("root writes into read-only directories")
  locked = tmp_path / "locked"
  locked.mkdir()
  locked.chmod(0o500)
  try:
    with pytest.raises(ValueError, match="cannot be written"):
      state_files.check_workdir(locked)
  finally:
    locked.chmod(0o700)


def test_resolve_workdir(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert state_files.resolve_workdir("runs/a") == str(tmp_path / "runs" / "a")
  assert state_files.resolve_workdir("gs://bucket/run") == "gs://bucket/run"
  for empty in ("", "  ", None):
    with pytest.raises(ValueError, match="--workdir is empty"):
      state_files.resolve_workdir(empty)
