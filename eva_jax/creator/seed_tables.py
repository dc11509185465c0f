"""Seed prompts from Arrow tables: Parquet files and Hugging Face `datasets` `save_to_disk` directories.

Hugging Face prompt sets (UltraFeedback, the paper's seeds, among them) are kept as Parquet exports
or as what `Dataset.save_to_disk` / `DatasetDict.save_to_disk` write: `state.json` listing Arrow IPC
stream files (`data-0000k-of-0000n.arrow`) and, for a DatasetDict, `dataset_dict.json` with one
sub-directory per split. Both are read with pyarrow, batch by batch, so a large set costs only the
rows kept. The prompt column holds a string or a chat (a list of {"role", "content"} structs, e.g.
UltraFeedback's `messages`), whose first user turn is the prompt.

`rows(...)` yields (row number, prompt or None, problem) like the JSONL and CSV readers in
`seeds.py`: rows are numbered from 1 across all files, in file order.
"""

from collections.abc import Callable
from collections.abc import Iterator
import json

from etils import epath
import pyarrow as pa
import pyarrow.parquet as pq

Row = tuple[int, str | None, str]
_BATCH_ROWS = 4096


def _parquet_files(path: epath.Path) -> list[epath.Path]:
  if path.is_dir():
    files = sorted(p for p in path.iterdir() if p.name.endswith(".parquet"))
    if not files:
      raise ValueError("directory holds no *.parquet file")
    return files
  if not path.exists():
    raise ValueError("no such file")
  return [path]


def _parquet_batches(path: epath.Path, field: str) -> Iterator[pa.Array]:
  for file in _parquet_files(path):
    with file.open("rb") as f:
      try:
        table = pq.ParquetFile(f)
      except pa.ArrowException as e:
        raise ValueError(f"{file.name} is not a Parquet file ({e})") from None
      names = table.schema_arrow.names
      if field not in names:
        raise ValueError(f"{file.name} has no column {field!r}; columns: {names}")
      for batch in table.iter_batches(batch_size=_BATCH_ROWS, columns=[field]):
        yield batch.column(0)


def _hf_split_dir(path: epath.Path, split: str) -> epath.Path:
  """The directory holding `state.json`: `path` itself (a Dataset) or its `split` (a DatasetDict)."""
  if (path / "state.json").exists():
    return path
  if (path / "dataset_dict.json").exists():
    splits = json.loads((path / "dataset_dict.json").read_text()).get("splits", [])
    if split not in splits:
      raise ValueError(f"DatasetDict has no split {split!r}; splits: {splits}")
    return path / split
  raise ValueError("not a `save_to_disk` directory (no state.json or dataset_dict.json)")


def _hf_batches(path: epath.Path, field: str, split: str) -> Iterator[pa.Array]:
  directory = _hf_split_dir(path, split)
  try:
    state = json.loads((directory / "state.json").read_text())
    files = [entry["filename"] for entry in state["_data_files"]]
  except (json.JSONDecodeError, KeyError, TypeError) as e:
    raise ValueError(f"{directory / 'state.json'} is damaged ({e!r})") from None
  if state.get("_indices_data_files"):  # written by older `datasets` for a select()ed view
    raise ValueError("the dataset has an indices mapping; save it after `flatten_indices()`")
  for name in files:
    with (directory / name).open("rb") as f:
      try:
        reader = pa.ipc.open_stream(f)
      except pa.ArrowException as e:
        raise ValueError(f"{name} is not an Arrow stream ({e})") from None
      if field not in reader.schema.names:
        raise ValueError(f"{name} has no column {field!r}; columns: {reader.schema.names}")
      column = reader.schema.get_field_index(field)
      for batch in reader:
        yield batch.column(column)


def _rows(batches: Iterator[pa.Array], field: str, prompt_of: Callable) -> Iterator[Row]:
  number = 0
  for array in batches:
    for value in array.to_pylist():
      number += 1
      if value is None:
        yield number, None, f"column {field!r} is null"
        continue
      prompt = prompt_of(value)
      if prompt is None:
        yield number, None, f"column {field!r} is not a string or a chat with a user turn"
      elif not prompt.strip():
        yield number, None, f"column {field!r} is empty"
      else:
        yield number, prompt, ""


def rows(path: epath.PathLike, kind: str, field: str, split: str, prompt_of: Callable) -> Iterator[Row]:
  """Rows of a "parquet" file (or directory of them) or an "hf_disk" directory; ValueError if unusable."""
  path = epath.Path(path)
  batches = _parquet_batches(path, field) if kind == "parquet" else _hf_batches(path, field, split)
  return _rows(batches, field, prompt_of)
