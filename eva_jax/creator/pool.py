"""The prompt pool: one TFDS dataset (array_record shards) per generation, committed atomically.

Layout under the pool root (local or gs://):

    gen_000001.json                       manifest = commit marker, written last
    gen_000001-<token>/eva_pool/1.0.0/    the TFDS dataset (dataset_info.json, features.json, shards)
    gen_000001.scores.json                the new prompts' reward stats, scored after the commit

A generation's new prompts are scored by the round that made them, after the generation was
committed; `write_scores` keeps those stats beside it and `read_generation` fills them into the
records that have none, so the pool holds every score the run computed (plain TFDS readers see
the dataset as written: the new prompts unscored).

Any TFDS user reads a generation with `tfds.builder_from_directory(pool.dataset_dir(g))`; its
"train" split holds one example per prompt with the fields of `records.PromptRecord`.

Atomicity: the dataset is written into a fresh directory no reader looks at, then the manifest
is written to a temporary name and renamed into place; a generation exists exactly when its
manifest does. A crash at any point leaves earlier generations untouched and the partial one
invisible (its directory is removed by the next write). This works on GCS too, which has atomic
object writes but no atomic directory rename.

Multi-host: `write_generation` writes on process 0 only, then every process waits at a barrier,
so all of them read the same committed generation afterwards.

Reads check what they read against the manifest: its `generation` and the generation its dataset
directory belongs to (the directory's name and the description TFDS keeps inside it), its
`num_prompts` against the records, and a shard that does not read is named with its generation.
A mismatch (an edited or mixed-up pool) is refused in one line naming both sides, never trained on.
"""

from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
import contextlib
import dataclasses
import io
import itertools
import json
import math
import re
import tempfile
import time
import uuid

from absl import logging
from array_record.python import array_record_module
from etils import epath
import jax
from jax.experimental import multihost_utils
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from eva_jax import state_files
from eva_jax.creator import records as records_lib

NAME = "eva_pool"
VERSION = "1.0.0"
SPLIT = "train"
FORMAT = 1  # manifest format
_READ_CHUNK = 100_000  # records parsed per tf.io.parse_example call
_MANIFEST = re.compile(r"gen_(\d{6})\.json")
_DATA_ROOT = re.compile(r"gen_(\d{6})-\w+")  # a generation's dataset directory, `gen_000001-<token>`
_DESCRIPTION = "eva prompt pool, generation {}"  # kept in the dataset's own dataset_info.json
_DESCRIBED = re.compile(r"eva prompt pool, generation (\d+)")
_FIELDS = tuple(f.name for f in dataclasses.fields(records_lib.PromptRecord))
_INT_FIELDS = ("generation", "n")
_FLOAT_FIELDS = ("mean", "max", "min", "std", "info")


def features() -> tfds.features.FeaturesDict:
  kinds = {f: np.int32 for f in _INT_FIELDS} | {f: np.float32 for f in _FLOAT_FIELDS}
  return tfds.features.FeaturesDict({f: kinds.get(f, tfds.features.Text()) for f in _FIELDS})


def _parse_spec() -> dict[str, tf.io.FixedLenFeature]:
  # TFDS stores int32 scalars as int64 and text as bytes in its tf.train.Example records.
  kinds = {f: tf.int64 for f in _INT_FIELDS} | {f: tf.float32 for f in _FLOAT_FIELDS}
  return {f: tf.io.FixedLenFeature([], kinds.get(f, tf.string)) for f in _FIELDS}


def _examples(records: Iterable[records_lib.PromptRecord]) -> Iterator[tuple[int, dict]]:
  seen = set()
  for index, record in enumerate(records):
    if record.prompt_id in seen:
      raise ValueError(f"duplicate prompt id {record.prompt_id!r} in one generation")
    seen.add(record.prompt_id)
    yield index, dataclasses.asdict(record)


def _barrier(name: str) -> None:
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


@contextlib.contextmanager
def _scratch_tempdir() -> Iterator[None]:
  """Points `tempfile` at a directory removed afterwards, for the duration of a TFDS build.

  Every TFDS builder construction calls `DatasetInfo.initialize_from_bucket`, which makes a
  `tempfile.mkdtemp("tfds")` directory and, for a dataset not on GCS, leaves it empty and behind:
  one stray directory in $TMPDIR per pool generation. Only process 0's main thread writes the pool,
  and nothing else runs during the write, so swapping the module-level default is safe here.
  """
  previous = tempfile.tempdir
  with tempfile.TemporaryDirectory(prefix="eva_pool_") as scratch:
    tempfile.tempdir = scratch
    try:
      yield
    finally:
      tempfile.tempdir = previous


@dataclasses.dataclass(frozen=True)
class Committed:
  """A committed generation as `Pool.commit` returns it."""

  records: list[records_lib.PromptRecord]  # the whole generation, as read back
  stats: dict  # the creator's counts for it (from its manifest when reused)
  reused: bool  # committed before this call (a redone round or step)

  def new(self, generation: int) -> list[records_lib.PromptRecord]:
    """The prompts this generation added (its children)."""
    return [r for r in self.records if r.generation == generation]


class Pool:
  """The generations of one run's prompt pool (see module docstring)."""

  def __init__(self, root: epath.PathLike):
    self.root = epath.Path(root)

  def _manifest_path(self, generation: int) -> epath.Path:
    return self.root / f"gen_{generation:06d}.json"

  def generations(self) -> list[int]:
    """Committed generations, ascending."""
    if not self.root.exists():
      return []
    found = (_MANIFEST.fullmatch(p.name) for p in self.root.iterdir())
    return sorted(int(m.group(1)) for m in found if m)

  def latest(self) -> int | None:
    committed = self.generations()
    return committed[-1] if committed else None

  def manifest(self, generation: int) -> dict:
    """The manifest of committed `generation`; ValueError when it claims another generation's data."""
    path = self._manifest_path(generation)
    if not path.exists():
      raise FileNotFoundError(f"pool generation {generation} is not committed in {self.root}")
    manifest = state_files.read_json(path)
    claimed = manifest.get("generation") if isinstance(manifest, dict) else None
    if claimed != generation:
      raise ValueError(
        f"{path}, the manifest of generation {generation}, says generation {claimed!r}; the pool was edited "
        "or mixed up"
      )
    data_root = epath.Path(str(manifest.get("dataset_dir", ""))).parts[:1]
    named = _DATA_ROOT.fullmatch(data_root[0]) if data_root else None
    if named is None or int(named.group(1)) != generation:
      raise ValueError(
        f"{path} names dataset directory {manifest.get('dataset_dir')!r}, which is not one of generation "
        f"{generation} (gen_{generation:06d}-...); the pool was edited or mixed up"
      )
    return manifest

  def dataset_dir(self, generation: int | None = None) -> epath.Path:
    """The TFDS dataset directory of a committed generation (default: the latest)."""
    generation = self._resolve(generation)
    return self.root / self.manifest(generation)["dataset_dir"]

  def _builder(self, generation: int) -> tfds.core.DatasetBuilder:
    """The TFDS builder of committed `generation`, checked against its manifest."""
    manifest = self.manifest(generation)
    directory = self.root / manifest["dataset_dir"]
    builder = tfds.builder_from_directory(directory)
    described = _DESCRIBED.fullmatch(builder.info.description or "")
    if described is not None and int(described.group(1)) != generation:
      raise ValueError(
        f"{self._manifest_path(generation)} names dataset {directory}, which holds generation "
        f"{described.group(1)} (its dataset_info.json); the pool was edited or mixed up"
      )
    count = builder.info.splits[SPLIT].num_examples
    if count != manifest.get("num_prompts"):
      raise ValueError(
        f"{self._manifest_path(generation)} says {manifest.get('num_prompts')!r} prompts, but its dataset "
        f"{directory} holds {count}; the pool was edited or mixed up"
      )
    return builder

  def _unreadable(self, generation: int, builder, error: Exception) -> ValueError:
    """The error for a dataset of `generation` that does not read: names the damaged shard."""
    split = builder.info.splits[SPLIT]
    first = (str(error).strip().splitlines() or [""])[0][:300]
    what = f"{builder.data_dir} does not read ({type(error).__name__}: {first})"
    for path, expected in zip(split.filepaths, split.shard_lengths, strict=True):
      problem = _shard_problem(path, expected)
      if problem:
        what = f"{path} does not read ({problem})"
        break
    return ValueError(f"pool generation {generation}: {what}; the file is damaged or was cut short")

  def _resolve(self, generation: int | None) -> int:
    if generation is None:
      generation = self.latest()
      if generation is None:
        raise FileNotFoundError(f"no committed pool generation in {self.root}")
    return generation

  def write_generation(
    self, generation: int, records: Iterable[records_lib.PromptRecord], stats: dict | None = None
  ) -> epath.Path:
    """Writes and commits `generation` (process 0), then waits for every process; returns its dataset dir.

    `stats` (the creator's counts for this generation) are kept in the manifest, so a round redone
    after the commit reports them again (`manifest(generation)["stats"]`).
    """
    if jax.process_index() == 0:
      self._write(generation, records, stats or {})
    _barrier(f"eva_pool_generation_{generation}")
    return self.dataset_dir(generation)

  def commit(
    self,
    generation: int,
    make: Callable[[], tuple[list[records_lib.PromptRecord], dict]],
    timer: Callable[[str], contextlib.AbstractContextManager] | None = None,
  ) -> Committed:
    """Generation `generation`: read back if already committed, else `make()`d, written and read back.

    A round or step redone after a crash finds its generation committed and continues from it
    without calling `make` (`reused`); otherwise every process continues from what process 0
    wrote, so an evolver need not be deterministic across hosts. `timer(phase)` (e.g. a
    `PhaseTimes`) times "creator" (the call to `make`) and "pool_io" (the writes and reads).
    """
    timer = timer or (lambda phase: contextlib.nullcontext())
    reused = generation in self.generations()
    if reused:
      with timer("pool_io"):
        stats = self.manifest(generation).get("stats", {})  # the creator's counts when it was made
    else:
      with timer("creator"):
        records, stats = make()
      with timer("pool_io"):
        self.write_generation(generation, records, stats)
    with timer("pool_io"):
      committed = self.read_generation(generation)
    return Committed(committed, stats, reused)

  def _write(self, generation: int, records: Iterable[records_lib.PromptRecord], stats: dict) -> None:
    if self._manifest_path(generation).exists():
      raise FileExistsError(f"pool generation {generation} is already committed in {self.root}")
    records = iter(records)
    first = next(records, None)
    if first is None:
      raise ValueError(f"pool generation {generation} has no prompts")
    self.root.mkdir(parents=True, exist_ok=True)
    self._remove_uncommitted()
    start = time.perf_counter()
    token = uuid.uuid4().hex[:12]
    data_root = self.root / f"gen_{generation:06d}-{token}"
    # TFDS prints "Downloading and preparing dataset..." and progress bars for every write; the pool
    # logs its own one-line summary instead.
    tfds.display_progress_bar(False)
    with contextlib.redirect_stdout(io.StringIO()), _scratch_tempdir():
      builder = tfds.dataset_builders.store_as_tfds_dataset(
        name=NAME,
        version=VERSION,
        features=features(),
        split_datasets={SPLIT: _examples(itertools.chain([first], records))},
        data_dir=data_root,
        file_format="array_record",
        disable_shuffling=True,  # keep the creator's order: index i is the i-th record written
        description=_DESCRIPTION.format(generation),
      )
    tfds.display_progress_bar(True)
    downloads = data_root / "downloads"  # an empty folder TFDS makes for every builder
    if downloads.exists():
      downloads.rmtree()
    num_prompts = builder.info.splits[SPLIT].num_examples
    manifest = {
      "format": FORMAT,
      "generation": generation,
      "dataset_dir": str(epath.Path(builder.data_dir).relative_to(self.root)),
      "num_prompts": num_prompts,
      "written_at": time.time(),
      "stats": {k: float(v) for k, v in stats.items()},
    }
    staged = self.root / f".gen_{generation:06d}.json.{token}"
    staged.write_text(json.dumps(manifest, indent=1))
    staged.replace(self._manifest_path(generation))  # the commit
    logging.info(
      "pool: generation %d committed, %d prompts in %.1fs (%s)",
      generation,
      num_prompts,
      time.perf_counter() - start,
      builder.data_dir,
    )

  def _remove_uncommitted(self) -> None:
    """Deletes what crashed writes left: dataset dirs no manifest names, staged manifests."""
    committed = {epath.Path(self.manifest(g)["dataset_dir"]).parts[0] for g in self.generations()}
    for path in self.root.iterdir():
      stale_data = re.fullmatch(r"gen_\d{6}-\w+", path.name) and path.name not in committed
      if stale_data or path.name.startswith(".gen_"):
        logging.warning("pool: removing %s left by an interrupted write", path)
        if path.is_dir():
          path.rmtree()
        else:
          path.unlink()

  def _scores_path(self, generation: int) -> epath.Path:
    return self.root / f"gen_{generation:06d}.scores.json"

  def write_scores(self, generation: int, records: Iterable[records_lib.PromptRecord]) -> None:
    """Keeps the reward stats of `records` (prompts of committed `generation`) beside it (process 0)."""
    if not self._manifest_path(generation).exists():
      raise FileNotFoundError(f"pool generation {generation} is not committed in {self.root}")
    if jax.process_index() == 0:
      scores = {
        r.prompt_id: [
          None if math.isnan(v) else v for v in (float(getattr(r, f)) for f in records_lib.STAT_FIELDS)
        ]
        for r in records
        if r.n > 0
      }
      state_files.write_json(self._scores_path(generation), {"generation": generation, "scores": scores})

  def scores(self, generation: int) -> dict[str, dict[str, float]]:
    """{prompt_id: {stat field: value}} written by `write_scores` for `generation` ({} if none)."""
    path = self._scores_path(generation)
    if not path.exists():
      return {}
    stored = state_files.read_json(path)
    if stored.get("generation") != generation:
      raise ValueError(
        f"{path}, the scores of generation {generation}, says generation {stored.get('generation')!r}; "
        "the pool was edited or mixed up"
      )
    table = stored["scores"]
    return {
      pid: {f: math.nan if v is None else v for f, v in zip(records_lib.STAT_FIELDS, row, strict=True)}
      for pid, row in table.items()
    }

  def data_source(self, generation: int | None = None):
    """The generation as a plain TFDS random-access data source (decoded dict per prompt)."""
    generation = self._resolve(generation)
    builder = self._builder(generation)
    try:
      return builder.as_data_source(SPLIT)
    except _READ_ERRORS as error:
      raise self._unreadable(generation, builder, error) from error

  def read_generation(self, generation: int | None = None) -> list[records_lib.PromptRecord]:
    """Every record of a committed generation (default: the latest), in write order.

    Reads the raw TFDS records and parses them in large `tf.io.parse_example` batches: the same
    bytes `data_source` decodes one example at a time, over ten times faster.
    """
    generation = self._resolve(generation)
    builder = self._builder(generation)
    try:
      out = _parsed_records(
        builder.as_data_source(SPLIT, deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
      )
    except _READ_ERRORS as error:
      raise self._unreadable(generation, builder, error) from error
    newer = [r.prompt_id for r in out if r.generation > generation]
    if newer:
      raise ValueError(
        f"pool generation {generation} ({builder.data_dir}) holds prompts of later generations "
        f"({', '.join(newer[:3])}); the pool was edited or mixed up"
      )
    scores = self.scores(generation)
    if scores:
      out = [
        dataclasses.replace(r, **(scores[r.prompt_id] | {"n": int(scores[r.prompt_id]["n"])}))
        if r.n == 0 and r.prompt_id in scores
        else r
        for r in out
      ]
    return out


# What a damaged shard raises: array_record's reader (RuntimeError: "Invalid Riegeli/records file",
# "should be at least 64KB big"), or TensorFlow's parser for records that come back empty.
_READ_ERRORS = (RuntimeError, ValueError, tf.errors.OpError)


def _parsed_records(source) -> list[records_lib.PromptRecord]:
  """Every record of a RAW_BYTES data source, parsed in large `tf.io.parse_example` batches."""
  spec = _parse_spec()
  out = []
  for begin in range(0, len(source), _READ_CHUNK):
    raw = source.__getitems__(range(begin, min(begin + _READ_CHUNK, len(source))))
    parsed = tf.io.parse_example(raw, spec)
    columns = []
    for field in _FIELDS:
      values = parsed[field].numpy().tolist()
      is_text = field not in _INT_FIELDS and field not in _FLOAT_FIELDS
      columns.append([v.decode("utf-8") for v in values] if is_text else values)
    out.extend(itertools.starmap(records_lib.PromptRecord, zip(*columns)))
  return out


def _shard_problem(path, expected: int) -> str | None:
  """What is wrong with one array_record shard that should hold `expected` records (None: nothing)."""
  try:
    reader = array_record_module.ArrayRecordReader(str(path))
    try:
      if not reader.ok() or reader.num_records() != expected:
        return f"{reader.num_records()} of its {expected} records read"
      reader.read_all()
    finally:
      reader.close()
  except (RuntimeError, OSError) as error:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
  return None
