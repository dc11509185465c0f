"""Reading the small JSON files a run keeps (summary, pool manifests, reward-model metadata) and
checking a work directory before a run writes anything.

A damaged or cut-short state file must give one line naming the file, not a bare JSON parser
message; a work directory that is a file or cannot be written is refused before any model is built.
"""

import json
import os
from typing import Any
import uuid

from etils import epath


def read_json(path: epath.PathLike) -> Any:
  """The JSON value in `path`; ValueError naming the file when it does not parse."""
  path = epath.Path(path)
  text = path.read_text()
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    raise ValueError(
      f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
      "the file is damaged or was cut short"
    ) from None


def write_json(path: epath.PathLike, value: Any, indent: int | None = None) -> None:
  """Writes `value` as JSON whole to a temporary file, then renames it: a kill never leaves it torn."""
  path = epath.Path(path)
  tmp = path.parent / f".{path.name}.tmp"
  tmp.write_text(json.dumps(value, indent=indent, default=float))
  tmp.replace(path)


def resolve_workdir(value: str | None) -> str:
  """`--workdir` made absolute (orbax refuses relative paths); ValueError when it is empty.

  An empty value is what an unset shell variable gives (`--workdir=$RUN`): refused rather than taken
  as the current directory, which would fill the checkout with a run. A bucket path stays as it is.
  """
  if value is None or not value.strip():
    raise ValueError("--workdir is empty (an unset shell variable?); give the directory of the run")
  return absolute(value)


def absolute(path: epath.PathLike) -> str:
  """`path` as an absolute local path (`~` expanded); paths with a scheme (gs://...) unchanged."""
  path = os.fspath(path)
  if "://" in path:
    return path
  return os.path.abspath(os.path.expanduser(path))


def check_workdir(workdir: epath.PathLike) -> epath.Path:
  """`workdir`, created if missing; ValueError if it is a file or (on a local disk) not writable."""
  workdir = epath.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise ValueError(f"--workdir {workdir} is a file, not a directory")
  try:
    workdir.mkdir(parents=True, exist_ok=True)
    if "://" not in str(workdir):  # a probe on a bucket would cost a round trip for nothing
      probe = workdir / f".write_probe_{uuid.uuid4().hex[:8]}"
      probe.write_text("")
      probe.unlink()
  except OSError as e:
    raise ValueError(
      f"--workdir {workdir} cannot be written ({type(e).__name__}: {e.strerror or e})"
    ) from None
  return workdir
