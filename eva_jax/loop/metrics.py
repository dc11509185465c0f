"""Run metrics: TensorBoard event files (clu metric writers) plus a JSONL file notebooks read back.

Only process 0 writes; other processes get a writer that drops everything, so callers never branch
on the process index. Each JSONL line is `{"step": int, "kind": "scalars" | "histogram", ...}`.
"""

import collections
from collections.abc import Mapping
import contextlib
import json
import math
import time

from clu import metric_writers
from etils import epath
import jax
import numpy as np

JSONL_NAME = "metrics.jsonl"


class MetricsWriter:
  """Writes scalars and histograms to TensorBoard and `<workdir>/metrics.jsonl`."""

  def __init__(self, workdir: epath.PathLike, *, enabled: bool | None = None):
    self.enabled = jax.process_index() == 0 if enabled is None else enabled
    self.path = epath.Path(workdir) / JSONL_NAME
    self._tb = None
    if self.enabled:
      self.path.parent.mkdir(parents=True, exist_ok=True)
      self._end_torn_line()
      self._tb = metric_writers.create_default_writer(
        str(epath.Path(workdir) / "tensorboard"), asynchronous=False
      )

  def _end_torn_line(self) -> None:
    """Ends a torn last line (a kill or a full disk mid-append) with a newline.

    Otherwise the next record would be appended to the fragment and both would be lost to readers.
    """
    if not self.path.exists():
      return
    with self.path.open("rb") as f:
      size = f.seek(0, 2)
      if size == 0:
        return
      f.seek(size - 1)
      torn = f.read(1) != b"\n"
    if torn:
      self._append_text("\n")

  def _append_text(self, text: str) -> None:
    with self.path.open("a") as f:
      f.write(text)

  def _append(self, record: dict) -> None:
    self._append_text(json.dumps(record) + "\n")

  def scalars(self, step: int, values: Mapping[str, float]) -> None:
    """Scalars at `step`; non-finite values are written as null in JSONL (never break the file)."""
    if not self.enabled:
      return
    clean = {k: float(np.asarray(v)) for k, v in values.items()}
    self._tb.write_scalars(step, clean)
    self._append(
      {"step": int(step), "kind": "scalars", **{k: v if math.isfinite(v) else None for k, v in clean.items()}}
    )

  def histogram(self, step: int, name: str, values, bins: int = 20) -> None:
    """A histogram of finite `values` (e.g. informativeness of a pool generation)."""
    if not self.enabled:
      return
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    self._tb.write_histograms(step, {name: values}, num_buckets={name: bins})
    counts, edges = np.histogram(values, bins=bins) if values.size else (np.zeros(0), np.zeros(0))
    self._append(
      {
        "step": int(step),
        "kind": "histogram",
        "name": name,
        "counts": counts.tolist(),
        "edges": edges.tolist(),
      }
    )

  def drop_after(self, committed) -> int:
    """Rewrites metrics.jsonl with only the records `committed(record)` keeps; returns how many went.

    A resumed run redoes the work after its checkpoint and logs it again: without this, a redone
    round's records would be in the file twice. (TensorBoard keeps both; it plots the last.) A line
    that does not parse (the torn last line of a killed append) goes too, as `read_jsonl` skips it.
    """
    if not self.enabled or not self.path.exists():
      return 0
    lines = [line for line in self.path.read_text().splitlines() if line.strip()]
    kept = [
      line
      for line, record in zip(lines, _parsed(lines), strict=True)
      if record is not None and committed(record)
    ]
    if len(kept) < len(lines):
      tmp = self.path.parent / f".{self.path.name}.tmp"
      tmp.write_text("".join(line + "\n" for line in kept))
      tmp.replace(self.path)
    return len(lines) - len(kept)

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = None


class PhaseTimes:
  """Wall seconds per named phase of a round: `with times("sample"): ...`; `stats()` as `time/<phase>`."""

  def __init__(self):
    self.seconds = collections.defaultdict(float)

  @contextlib.contextmanager
  def __call__(self, phase: str):
    start = time.perf_counter()
    try:
      yield
    finally:
      self.seconds[phase] += time.perf_counter() - start

  def stats(self) -> dict[str, float]:
    return {f"time/{phase}": seconds for phase, seconds in self.seconds.items()}


def read_jsonl(workdir: epath.PathLike) -> list[dict]:
  """All records of a run's metrics file (skips a torn last line left by a killed run)."""
  path = epath.Path(workdir) / JSONL_NAME
  if not path.exists():
    return []
  return [record for record in _parsed(path.read_text().splitlines()) if record is not None]


def _parsed(lines: list[str]) -> list[dict | None]:
  """The record of each line; None for a line that is not a JSON object (a torn append)."""
  out = []
  for line in lines:
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      record = None
    out.append(record if isinstance(record, dict) else None)
  return out
