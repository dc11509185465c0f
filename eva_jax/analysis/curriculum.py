"""Curriculum tables of an eva run, read from its workdir through the project's own readers.

    run = curriculum.Run("/tmp/eva_quickstart")  # pool in <workdir>/pool unless pool_dir= says otherwise
    run.pool_sizes()  run.informativeness()  run.rewards_by_round()  run.method_mix()
    run.lineage_trees()  run.extremes()  run.difficulty_mix()  run.eval_by_bucket()  run.before_after()

Sources: the pool generations (`creator.pool.Pool`, via `creator.lineage.Lineage`), `summary.json`
(per-round stats and held-out evaluations) and `metrics.jsonl` (`loop.metrics.read_jsonl`). Every
table is a list of plain dicts (numbers, strings, numpy arrays), ready for matplotlib; `text_table`
prints one. A run still in progress can be read: the pool lists committed generations only, and
`refresh()` drops what was read so the next call sees new generations and rounds.
"""

import collections
from collections.abc import Sequence
import json
import math
import re

from etils import epath
import numpy as np

from eva_jax import tasks
from eva_jax.creator import lineage as lineage_lib
from eva_jax.creator import pool as pool_lib
from eva_jax.creator import records as records_lib
from eva_jax.loop import metrics as metrics_lib

SUMMARY = "summary.json"
OVERALL = "all"  # the evaluation's row over every bucket
NAN = math.nan


class RunDirError(FileNotFoundError):
  """The workdir, its pool or its summary is missing (the message says which and what to do)."""


def _mean(values) -> float:
  values = np.asarray(list(values), np.float64)
  values = values[np.isfinite(values)]
  return float(values.mean()) if values.size else NAN


def _bucket_order(label: str) -> tuple:
  """Labels like "3+2" or "2+2+1" from easy to hard: by total, then by count of the numbers in them."""
  numbers = [int(x) for x in re.findall(r"\d+", label)]
  return (sum(numbers), len(numbers), label)


def _prompt_row(record: records_lib.PromptRecord, **extra) -> dict:
  fields = ("prompt_id", "parent_id", "generation", "method", "info", "n", "text")
  return {f: getattr(record, f) for f in fields} | {"reward": record.mean} | extra


class Run:
  """One eva run directory; see the module docstring."""

  def __init__(self, workdir: epath.PathLike, pool_dir: epath.PathLike = "", task: str = ""):
    self.workdir = epath.Path(workdir)
    if not self.workdir.is_dir():
      raise RunDirError(
        f"no eva run directory at {self.workdir}: start one with `make quickstart WORKDIR={self.workdir}` "
        "or point EVA_RUN_DIR at an existing run"
      )
    self.pool = pool_lib.Pool(pool_dir or self.workdir / "pool")
    self._task_name = task
    self.refresh()

  def refresh(self) -> None:
    """Forgets what was read; the next table reads the (possibly grown) run again."""
    self._lineage = None

  # Sources.

  @property
  def lineage(self) -> lineage_lib.Lineage:
    if self._lineage is None:
      if not self.pool.generations():
        raise RunDirError(
          f"no committed prompt-pool generation in {self.pool.root}: the run has not written its seed "
          "pool yet, or its config set pool.dir (then pass pool_dir=)"
        )
      self._lineage = lineage_lib.Lineage.from_pool(self.pool)
    return self._lineage

  def summary(self) -> dict:
    """`<workdir>/summary.json`: {"rounds": [{"round", "generation", "stats", "eval"}, ...], ...}."""
    path = self.workdir / SUMMARY
    if not path.exists():
      raise RunDirError(f"no {SUMMARY} yet in {self.workdir}: the run has not finished its warm start")
    try:
      return json.loads(path.read_text())
    except json.JSONDecodeError as e:
      raise RunDirError(f"{path} is being written (or torn): read it again in a moment ({e})") from e

  def metrics(self) -> list[dict]:
    """The lines of `<workdir>/metrics.jsonl`."""
    return metrics_lib.read_jsonl(self.workdir)

  def scalar_series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one logged scalar, e.g. "warmstart/nll" (null values skipped)."""
    points = [
      (r["step"], r[name]) for r in self.metrics() if r["kind"] == "scalars" and r.get(name) is not None
    ]
    steps, values = zip(*points) if points else ((), ())
    return np.asarray(steps, np.int64), np.asarray(values, np.float64)

  # Pool tables.

  def pool_sizes(self) -> list[dict]:
    """Per generation: prompts, new ones, seeds, evolved, scored; mean reward, info and depth."""
    return self.lineage.summary()

  def informativeness(self) -> list[dict]:
    """Per generation: the finite info scores (`values`) of its prompts and their summary numbers."""
    rows = []
    for generation, recs in self.lineage.generations.items():
      info = records_lib.info_scores(recs)
      values = info[np.isfinite(info)]
      median = float(np.median(values)) if values.size else NAN
      rows.append(
        {"generation": generation, "scored": values.size, "unscored": info.size - values.size}
        | {"mean": _mean(values), "median": median, "values": values}
      )
    return rows

  def rewards_by_generation(self) -> list[dict]:
    """Per generation: mean sampled reward of its scored seed prompts and of its evolved ones."""
    rows = []
    for generation, recs in self.lineage.generations.items():
      by_source = {s: [r.mean for r in recs if r.source == s and r.n > 0] for s in records_lib.SOURCES}
      rows.append(
        {"generation": generation}
        | {f"{s}_reward": _mean(v) for s, v in by_source.items()}
        | {f"{s}_scored": len(v) for s, v in by_source.items()}
      )
    return rows

  def method_mix(self) -> list[dict]:
    """Per generation after the seeds: how many of its new prompts each evolution method made.

    Every row's `counts` lists the same methods (0 where unused), in first-use order.
    """
    generations = self.lineage.generations
    made = {
      g: collections.Counter(r.method for r in recs if r.generation == g)
      for g, recs in generations.items()
      if g > 0
    }
    methods = list(dict.fromkeys(m for counts in made.values() for m in counts))
    return [
      {"generation": g, "children": sum(c.values()), "counts": {m: c.get(m, 0) for m in methods}}
      for g, c in made.items()
    ]

  def lineage_trees(self, seeds: Sequence[str] | None = None, count: int = 3) -> list[dict]:
    """Descendant trees of `seeds` (default: the `count` seeds with the most descendants).

    Each tree: {"seed", "text", "nodes"}; nodes are the descendants in breadth-first order, each with
    its parent, generation, method, depth below the seed and latest reward statistics.
    """
    lineage = self.lineage
    if seeds is None:
      sizes = collections.Counter(r.root_id for r in lineage.by_id.values() if r.parent_id)
      all_seeds = [r.prompt_id for r in lineage.by_id.values() if not r.parent_id]
      seeds = sorted(all_seeds, key=lambda s: -sizes.get(s, 0))[:count]
    trees = []
    for seed in seeds:
      nodes, frontier = [], [(c, 1) for c in lineage.children(seed)]
      while frontier:
        record, depth = frontier.pop(0)
        nodes.append(_prompt_row(record, depth=depth))
        frontier.extend((c, depth + 1) for c in lineage.children(record.prompt_id))
      trees.append({"seed": seed, "text": lineage[seed].text, "nodes": nodes})
    return trees

  def extremes(self, count: int = 5) -> dict[str, list[dict]]:
    """{"most": ..., "least": ...}: the `count` most and least informative prompts (latest scores)."""
    scored = [r for r in self.lineage.by_id.values() if math.isfinite(r.info)]
    ranked = sorted(scored, key=lambda r: (-r.info, r.generation, r.prompt_id))
    return {
      "most": [_prompt_row(r) for r in ranked[:count]],
      "least": [_prompt_row(r) for r in ranked[::-1][:count]],
    }

  @property
  def task(self) -> tasks.Task | None:
    """The run's task: the one given, else the embedded task every seed prompt belongs to (or None)."""
    if self._task_name:
      return tasks.get_task(self._task_name)
    seeds = self.lineage.generations[min(self.lineage.generations)]
    for task in tasks.TASKS.values():
      if all(task.difficulty(r.text) is not None for r in seeds):
        return task
    return None

  def difficulty_mix(self) -> list[dict]:
    """Per generation: prompts per difficulty bucket (all of them, and the new ones), easy to hard."""
    task = self.task
    if task is None:
      raise ValueError(f"the seed prompts of {self.workdir} belong to no embedded task: pass task=")
    labelled = {
      g: [(task.difficulty(r.text) or "other", r.generation == g) for r in recs]
      for g, recs in self.lineage.generations.items()
    }
    buckets = sorted({label for rows in labelled.values() for label, _ in rows}, key=_bucket_order)
    rows = []
    for g, rows_g in labelled.items():
      every, new = collections.Counter(b for b, _ in rows_g), collections.Counter(b for b, n in rows_g if n)
      counts = {b: every.get(b, 0) for b in buckets}
      rows.append({"generation": g, "counts": counts, "new_counts": {b: new.get(b, 0) for b in buckets}})
    return rows

  # Summary tables.

  def rewards_by_round(self) -> list[dict]:
    """Per finished round: mean sampled reward on the pool it started from (old) and on its new prompts."""
    rows = []
    for entry in self.summary()["rounds"]:
      stats = entry.get("stats")
      if not stats:
        continue
      old = stats.get("round/reward_mean", stats.get("train/reward/mean", NAN))
      new = stats.get("round/new_prompt_reward_mean", NAN)
      rows.append(
        {
          "round": entry["round"],
          "generation": entry["generation"],
          "pool_size": stats.get("round/pool_size", stats.get("online/pool_size", NAN)),
          "old_reward": old,
          "new_reward": new,
          "gap": new - old,
          "train_pairs": stats.get("round/train_pairs", NAN),
        }
      )
    return rows

  def eval_by_bucket(self) -> list[dict]:
    """Per evaluated round and difficulty bucket (last: "all"): held-out exact match and task reward."""
    rows = []
    for entry in self.summary()["rounds"]:
      evaluation = entry.get("eval") or {}
      prefix = "eval/exact_match"
      buckets = [k.removeprefix(prefix + "/") for k in evaluation if k.startswith(prefix + "/")]
      for bucket in buckets + ([OVERALL] if prefix in evaluation else []):
        suffix = "" if bucket == OVERALL else f"/{bucket}"
        rows.append(
          {
            "round": entry["round"],
            "bucket": bucket,
            "exact_match": evaluation.get(prefix + suffix, NAN),
            "reward": evaluation.get(f"eval/task_reward{suffix}", NAN),
          }
        )
    return rows

  def before_after(self) -> list[dict]:
    """Per bucket: exact match and reward at the first evaluated round and at the last one."""
    rows = self.eval_by_bucket()
    if not rows:
      raise RunDirError(f"{self.workdir} has no held-out evaluation with a task report yet")
    first, last = rows[0]["round"], rows[-1]["round"]
    by_key = {(r["round"], r["bucket"]): r for r in rows}
    out = []
    for bucket in dict.fromkeys(r["bucket"] for r in rows):
      before, after = by_key.get((first, bucket), {}), by_key.get((last, bucket), {})
      out.append(
        {
          "bucket": bucket,
          "before_round": first,
          "after_round": last,
          "exact_before": before.get("exact_match", NAN),
          "exact_after": after.get("exact_match", NAN),
          "reward_before": before.get("reward", NAN),
          "reward_after": after.get("reward", NAN),
        }
      )
    return out


def text_table(rows: Sequence[dict], columns: Sequence[str] | None = None, digits: int = 3) -> str:
  """A fixed-width text table of `rows` (floats with `digits` decimals)."""
  if not rows:
    return "(no rows)"
  columns = list(columns or rows[0])

  def cell(value) -> str:
    if isinstance(value, float):
      return f"{value:.{digits}f}"
    return str(value)

  cells = [[cell(r.get(c, "")) for c in columns] for r in rows]
  widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
  lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
  lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
  return "\n".join(lines)
