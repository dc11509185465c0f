"""Seed prompts for generation 0: from the task, a JSONL, CSV or Parquet file, a Hugging Face
`save_to_disk` directory, or an existing TFDS dataset.

JSONL: one JSON object per line with the prompt under `field` (default "prompt", as in Hugging
Face exports); a chat-style value (a list of {"role", "content"} messages) gives its first user
turn. CSV: a header row and the prompt in column `field`. Parquet (a file or a directory of them)
and `save_to_disk` directories ("hf_disk"): column `field`, a string or a chat (`seed_tables.py`);
their "lines" are 1-based row numbers. TFDS: any dataset directory with a text feature `field`
(e.g. an earlier run's pool generation).

Malformed lines (not UTF-8, not JSON, not an object, field missing, not a string, empty, a
JSON-escaped lone surrogate that no UTF-8 file can hold; in CSV a wrong number of cells or an empty
cell) are collected with their 1-based line numbers. With `on_malformed="skip"` they are logged and
counted; with "fail" the load raises ValueError listing them. Blank lines are not malformed: they
are ignored. A UTF-8 byte-order mark at the start of either file is not part of the first line.

`refuse_unfit` applies the same policy to seeds the sampler could never answer (longer, with the
chat template, than the room the KV cache leaves for a prompt), so a run refuses them at generation
0 instead of failing in round 1 with a workdir it can no longer resume.
"""

import codecs
from collections.abc import Callable
from collections.abc import Iterator
import csv
import dataclasses
import io
import json

from absl import logging
from etils import epath
import tensorflow_datasets as tfds

from eva_jax import tasks
from eva_jax.creator import config as creator_config
from eva_jax.creator import seed_tables

_SHOWN = 10  # malformed lines listed in messages


@dataclasses.dataclass(frozen=True)
class SeedLoad:
  prompts: list[str]
  malformed: list[tuple[int, str]]  # (line number, what is wrong), in file order
  source: str = ""
  lines: list[int] | None = None  # each prompt's line (1-based; for task seeds and TFDS its position)

  def line_numbers(self) -> list[int]:
    return self.lines if self.lines is not None else list(range(1, len(self.prompts) + 1))


@dataclasses.dataclass(frozen=True)
class PromptLimit:
  """The longest prompt the run can sample: `count(text)` tokens (chat template and BOS included)."""

  count: Callable[[str], int]
  max_tokens: int
  what: str  # where the limit comes from, for the message


def _prompt_of(value) -> str | None:
  if isinstance(value, str):
    return value
  if isinstance(value, list):  # chat messages
    for message in value:
      if (
        isinstance(message, dict)
        and message.get("role") == "user"
        and isinstance(message.get("content"), str)
      ):
        return message["content"]
  return None


def _jsonl_rows(data: bytes, field: str) -> Iterator[tuple[int, str | None, str]]:
  """(line number, prompt or None, problem) for every non-blank line."""
  data = data.removeprefix(codecs.BOM_UTF8)  # editors on Windows write one; it is not JSON
  for number, line in enumerate(data.split(b"\n"), start=1):
    if not line.strip():
      continue
    try:
      row = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
      yield number, None, "not UTF-8"
      continue
    except json.JSONDecodeError as e:
      yield number, None, f"invalid JSON ({e.msg})"
      continue
    if not isinstance(row, dict):
      yield number, None, f"not a JSON object ({type(row).__name__})"
    elif field not in row:
      yield number, None, f"no field {field!r}"
    else:
      prompt = _prompt_of(row[field])
      if prompt is None:
        yield number, None, f"field {field!r} is not a string or a chat with a user turn"
      elif not prompt.strip():
        yield number, None, f"field {field!r} is empty"
      elif not _utf8_safe(prompt):
        yield number, None, f"field {field!r} holds a lone surrogate (\\ud800-\\udfff), not text"
      else:
        yield number, prompt, ""


def _utf8_safe(text: str) -> bool:
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    return False
  return True


def _csv_rows(data: bytes, field: str) -> Iterator[tuple[int, str | None, str]]:
  try:
    text = data.decode("utf-8-sig")
  except UnicodeDecodeError as e:
    raise ValueError(f"CSV is not UTF-8 (byte {e.start})") from None
  reader = csv.reader(io.StringIO(text, newline=""))
  header = next(reader, None)
  if header is None or field not in header:
    raise ValueError(f"CSV has no column {field!r}; header: {header}")
  column = header.index(field)
  for row in reader:
    number = reader.line_num
    if not any(cell.strip() for cell in row):
      continue
    if len(row) != len(header):
      yield number, None, f"{len(row)} cells, the header has {len(header)}"
    elif not row[column].strip():
      yield number, None, f"column {field!r} is empty"
    else:
      yield number, row[column], ""


def report_lines(
  source: str, malformed: list[tuple[int, str]], on_malformed: str, what: str = "malformed"
) -> None:
  """Raises ("fail") or logs ("skip") the listed lines."""
  if not malformed:
    return
  listed = "; ".join(f"line {n}: {p}" for n, p in malformed[:_SHOWN])
  more = f" (and {len(malformed) - _SHOWN} more)" if len(malformed) > _SHOWN else ""
  message = f"{source}: {len(malformed)} {what} line(s): {listed}{more}"
  if on_malformed == "fail":
    raise ValueError(message)
  logging.warning("%s; skipped", message)


def _collect(rows, source: str, on_malformed: str, limit: int) -> SeedLoad:
  prompts, lines, malformed = [], [], []
  for number, prompt, problem in rows:
    if prompt is None:
      malformed.append((number, problem))
    elif not limit or len(prompts) < limit:
      prompts.append(prompt)
      lines.append(number)
    else:  # the first `limit` are in; later rows are not read (a large table is read only so far)
      break
  report_lines(source, malformed, on_malformed)
  return SeedLoad(prompts, malformed, source, lines)


def refuse_unfit(load: SeedLoad, limit: PromptLimit, on_malformed: str) -> tuple[SeedLoad, int]:
  """`load` without the prompts longer than `limit` (reported by line, by the `on_malformed` policy).

  Returns the kept load and how many were refused. Runs on every seed, whatever the filters say: a
  seed the sampler cannot take would otherwise stop round 1 after the warm start.
  """
  kept, lines, unfit = [], [], []
  for prompt, number in zip(load.prompts, load.line_numbers(), strict=True):
    tokens = limit.count(prompt)
    if tokens > limit.max_tokens:
      unfit.append(
        (number, f"{tokens} tokens with the chat template; {limit.what} leaves {limit.max_tokens}")
      )
    else:
      kept.append(prompt)
      lines.append(number)
  report_lines(load.source, unfit, on_malformed, "too long")
  return dataclasses.replace(load, prompts=kept, lines=lines, malformed=load.malformed + unfit), len(unfit)


def _table_rows(path: epath.Path, kind: str, field: str, split: str):
  for number, prompt, problem in seed_tables.rows(path, kind, field, split, _prompt_of):
    if prompt is not None and not _utf8_safe(prompt):
      yield number, None, f"column {field!r} holds a lone surrogate, not text"
    else:
      yield number, prompt, problem


def load_file(
  path: epath.PathLike,
  kind: str,
  field: str = "prompt",
  on_malformed: str = "skip",
  limit: int = 0,
  split: str = "train",
) -> SeedLoad:
  """Seeds from a "jsonl", "csv", "parquet" file or "hf_disk" directory (see module docstring).

  `limit` > 0 keeps the first N good prompts (Parquet and Arrow files are read only that far);
  `split` picks the split of a `DatasetDict.save_to_disk` directory.
  """
  if on_malformed not in creator_config.MALFORMED_POLICIES:
    raise ValueError(f"on_malformed must be one of {creator_config.MALFORMED_POLICIES}, got {on_malformed!r}")
  kinds = ("jsonl", "csv", "parquet", "hf_disk")
  if kind not in kinds:
    raise ValueError(f"unknown seed file kind {kind!r}; expected one of {kinds}")
  path = epath.Path(path)
  try:
    if kind in ("jsonl", "csv"):
      rows = list({"jsonl": _jsonl_rows, "csv": _csv_rows}[kind](path.read_bytes(), field))
    else:
      rows = _table_rows(path, kind, field, split)
    return _collect(rows, str(path), on_malformed, limit)
  except (ValueError, OSError) as e:  # the whole file is unusable (header, encoding, format)
    if isinstance(e, ValueError) and str(e).startswith(f"{path}: "):
      raise  # _collect's list of malformed lines already names the file
    raise ValueError(f"{path}: {e}") from None


def load_tfds(
  directory: epath.PathLike, field: str = "prompt", split: str = "train", limit: int = 0
) -> SeedLoad:
  """Seeds from the text feature `field` of a TFDS dataset directory (array_record or tfrecord)."""
  builder = tfds.builder_from_directory(directory)
  if field not in builder.info.features:
    raise ValueError(f"{directory}: no feature {field!r}; features: {sorted(builder.info.features)}")
  if builder.info.file_format == tfds.core.FileFormat.ARRAY_RECORD:
    source = builder.as_data_source(split)
    rows = source.__getitems__(range(min(limit, len(source)) if limit else len(source)))
  else:  # tfrecord shards have no random access: stream them
    rows = tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False).take(limit or -1))
  prompts = [row[field].decode("utf-8") if isinstance(row[field], bytes) else str(row[field]) for row in rows]
  return SeedLoad(prompts, [], str(directory))


def load_seeds(config: creator_config.PoolConfig, *, task: str, seed: int) -> SeedLoad:
  """The seed prompts `config.pool` names (`task`: that task's `seed_prompts(num_seeds, seed)`)."""
  if config.seed_source == "task":
    return SeedLoad(tasks.get_task(task).seed_prompts(config.num_seeds, seed), [], f"task {task}")
  if config.seed_source == "tfds":
    return load_tfds(config.seed_path, config.seed_field, config.seed_split, config.num_seeds)
  return load_file(
    config.seed_path,
    config.seed_source,
    config.seed_field,
    config.on_malformed,
    config.num_seeds,
    config.seed_split,
  )
