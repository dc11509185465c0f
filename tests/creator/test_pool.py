"""The TFDS prompt pool: round trip through plain TFDS, atomic commits, crash safety."""

import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

from etils import epath
import numpy as np
import pytest
import tensorflow_datasets as tfds

from eva_jax.creator import pool as pool_lib
from eva_jax.creator import records as records_lib
from tests.hang_guard import HANG_GUARD_S

TEXTS = [
  "What is 12 + 34?",
  "Use {prompt} and {} and $x and %s",
  "二と三を足すと？",
  "tab\tnew\nline",
  "x" * 5000,
]


def _records(generation: int = 0) -> list[records_lib.PromptRecord]:
  seeds = records_lib.seed_records(TEXTS)
  scored = [
    dataclasses.replace(seeds[0], n=6, mean=0.5, max=1.0, min=0.0, std=0.37, info=1.0),
    dataclasses.replace(seeds[1], n=2, mean=1 / 3, max=0.4, min=0.1, std=0.15, info=0.3),
  ]
  child = records_lib.PromptRecord("g1-0", "What is 120 + 34?", "g0-0", "g0-0", 1, "add_digit", "evolved")
  return scored + seeds[2:] + ([child] if generation else [])


def _as_float32(record: records_lib.PromptRecord) -> tuple:
  """What the pool stores: float32 statistics; NaN made comparable."""
  out = []
  for value in dataclasses.astuple(record):
    if isinstance(value, float):
      value = "nan" if math.isnan(value) else float(np.float32(value))
    out.append(value)
  return tuple(out)


def test_round_trip_through_plain_tfds(tmp_path):
  pool = pool_lib.Pool(tmp_path / "pool")
  assert pool.generations() == [] and pool.latest() is None
  pool.write_generation(0, _records(0))
  directory = pool.write_generation(1, _records(1))
  assert pool.generations() == [0, 1] and pool.latest() == 1
  assert directory == pool.dataset_dir(1) == pool.dataset_dir()
  expected = [_as_float32(r) for r in _records(1)]
  assert [_as_float32(r) for r in pool.read_generation(1)] == expected
  assert [_as_float32(r) for r in pool.read_generation(0)] == expected[:-1]

  # Any TFDS user reads the same thing with TFDS alone.
  builder = tfds.builder_from_directory(os.fspath(directory))
  assert builder.info.splits["train"].num_examples == len(expected)
  assert set(builder.info.features) == {f.name for f in dataclasses.fields(records_lib.PromptRecord)}
  assert sorted(p.name.split(".")[1].split("-")[0] for p in epath.Path(directory).glob("*array_record*")) == [
    "array_record"
  ]
  source = builder.as_data_source("train")
  plain = []
  for i in range(len(source)):
    row = source[i]
    values = {k: v.decode() if isinstance(v, bytes) else np.asarray(v).item() for k, v in row.items()}
    plain.append(_as_float32(records_lib.PromptRecord(**values)))
  assert plain == expected
  manifest = pool.manifest(1)
  assert manifest["num_prompts"] == len(expected) and manifest["generation"] == 1
  assert pool.data_source(0)[1]["text"].decode() == TEXTS[1]


def test_generation_is_committed_once_and_must_be_sane(tmp_path):
  pool = pool_lib.Pool(tmp_path)
  pool.write_generation(0, _records(0))
  with pytest.raises(FileExistsError, match="generation 0 is already committed"):
    pool.write_generation(0, _records(0))
  with pytest.raises(ValueError, match="generation 1 has no prompts"):
    pool.write_generation(1, [])
  with pytest.raises(ValueError, match="duplicate prompt id 'g0-0'"):
    pool.write_generation(1, _records(0) + _records(0)[:1])
  assert pool.generations() == [0]
  with pytest.raises(FileNotFoundError, match="generation 3 is not committed"):
    pool.read_generation(3)
  with pytest.raises(FileNotFoundError, match="no committed pool generation"):
    pool_lib.Pool(tmp_path / "empty").read_generation()


def test_the_creator_stats_are_kept_in_the_manifest(tmp_path):
  pool = pool_lib.Pool(tmp_path)
  pool.write_generation(0, _records(0), {"creator/children": 7, "creator/drop/refusal": 2})
  pool.write_generation(1, _records(1))
  assert pool.manifest(0)["stats"] == {"creator/children": 7.0, "creator/drop/refusal": 2.0}
  assert pool.manifest(1)["stats"] == {}


def test_new_prompts_scores_are_kept_beside_their_generation(tmp_path):
  pool = pool_lib.Pool(tmp_path)
  with pytest.raises(FileNotFoundError, match="generation 1 is not committed"):
    pool.write_scores(1, [])
  pool.write_generation(1, _records(1))
  child = _records(1)[-1]
  scored = dataclasses.replace(child, n=4, mean=0.25, max=1.0, min=0.0, std=0.43, info=math.nan)
  pool.write_scores(1, [scored, _records(1)[2]])  # an unscored record (n = 0) is not kept
  (kept,) = pool.scores(1).values()
  assert list(pool.scores(1)) == ["g1-0"] and math.isnan(kept.pop("info"))
  assert kept == {"n": 4, "mean": 0.25, "max": 1.0, "min": 0.0, "std": 0.43}
  back = pool.read_generation(1)
  assert _as_float32(back[-1]) == _as_float32(scored)
  # Records scored in the dataset itself keep their own stats; the rest are as written.
  assert [_as_float32(r) for r in back[:-1]] == [_as_float32(r) for r in _records(1)[:-1]]
  assert pool.generations() == [1] and pool.scores(0) == {}


def test_a_generation_without_its_manifest_is_invisible_and_cleaned_up(tmp_path):
  pool = pool_lib.Pool(tmp_path)
  pool.write_generation(0, _records(0))
  partial = pool.write_generation(1, _records(1))
  (tmp_path / "gen_000001.json").unlink()  # as if the process died just before the commit
  assert pool.generations() == [0] and pool.latest() == 0
  leftover = tmp_path / partial.relative_to(tmp_path).parts[0]
  assert leftover.exists()
  pool.write_generation(1, _records(1))
  assert not leftover.exists() and pool.generations() == [0, 1]
  assert len(pool.read_generation(1)) == len(TEXTS) + 1


# One subprocess, killed with SIGKILL while it writes generation 1 of two pools at once: in one
# thread TFDS is still consuming the records ("examples"); in the other the dataset is complete on
# disk and the manifest is being written ("commit"). One process, so the test pays for one import.
_WRITER = textwrap.dedent(
  """
  import sys, threading, time
  from etils import epath
  from eva_jax.creator import pool as pool_lib
  from eva_jax.creator import records as records_lib

  examples_root, commit_root = sys.argv[1:]

  def stop_here(root):
    (epath.Path(root) / "marker").write_text("now")
    time.sleep(600)

  def records(stop_at=None):
    for i in range(20_000):
      if i == stop_at:
        stop_here(examples_root)
      yield records_lib.PromptRecord(f"g1-{i}", f"prompt {i}", "g0-0", "g0-0", 1, "add_digit", "evolved")

  write_text = epath.Path.write_text
  def slow_write_text(self, *args, **kwargs):
    if self.name.startswith(".gen_"):
      stop_here(commit_root)
    return write_text(self, *args, **kwargs)
  epath.Path.write_text = slow_write_text

  threading.Thread(target=lambda: pool_lib.Pool(examples_root).write_generation(1, records(3_000))).start()
  pool_lib.Pool(commit_root).write_generation(1, records())
  """
)


def test_a_crash_mid_write_leaves_the_previous_generation_intact(tmp_path):
  roots = {point: tmp_path / point for point in ("examples", "commit")}
  for root in roots.values():
    pool_lib.Pool(root).write_generation(0, _records(0))
  writer = subprocess.Popen(
    [sys.executable, "-c", _WRITER, str(roots["examples"]), str(roots["commit"])],
    env=dict(os.environ, JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3"),
    stdout=subprocess.DEVNULL,
    stderr=subprocess.PIPE,
  )
  deadline = time.monotonic() + HANG_GUARD_S
  while not all((root / "marker").exists() for root in roots.values()):
    assert writer.poll() is None, f"writer exited early: {writer.stderr.read().decode()[-2000:]}"
    assert time.monotonic() < deadline, "writer never reached its kill points"
    time.sleep(0.05)
  os.kill(writer.pid, signal.SIGKILL)
  writer.wait()
  writer.stderr.close()

  for point, root in roots.items():
    (root / "marker").unlink()
    pool = pool_lib.Pool(root)
    assert pool.generations() == [0], point
    assert [_as_float32(r) for r in pool.read_generation()] == [_as_float32(r) for r in _records(0)]
    leftovers = [p.name for p in root.iterdir() if p.name.startswith(("gen_000001", ".gen_000001"))]
    assert leftovers, f"{point}: the killed writer left nothing behind; the test did not catch it mid-write"
    complete = list(root.glob("gen_000001-*/eva_pool/1.0.0/dataset_info.json"))
    assert len(complete) == (point == "commit")  # only the commit was missing there
    # A resumed run writes the generation again; the leftovers go.
    pool.write_generation(1, _records(1))
    assert pool.generations() == [0, 1]
    assert [r.prompt_id for r in pool.read_generation(1)] == [r.prompt_id for r in _records(1)]
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".json")) == sorted(
      pool.manifest(g)["dataset_dir"].split("/")[0] for g in (0, 1)
    )


def test_a_pool_write_leaves_nothing_in_the_temp_dir(tmp_path, monkeypatch):
  # TFDS makes an empty mkdtemp("tfds") directory per builder and leaves it (issue 17 #20).
  scratch = tmp_path / "tmp"
  scratch.mkdir()
  monkeypatch.setattr(tempfile, "tempdir", str(scratch))
  pool = pool_lib.Pool(tmp_path / "pool")
  pool.write_generation(0, records_lib.seed_records(["A.", "B."]))
  pool.write_generation(1, records_lib.seed_records(["C."]))
  assert list(scratch.iterdir()) == []
  assert tempfile.tempdir == str(scratch)  # restored
  assert [r.text for r in pool.read_generation(1)] == ["C."]


def _edit_manifest(pool: pool_lib.Pool, index: int, **fields) -> None:
  path = pool.root / f"gen_{index:06d}.json"
  path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_a_manifest_naming_another_generations_dataset_is_refused(tmp_path):
  pool = pool_lib.Pool(tmp_path)
  pool.write_generation(0, _records(0))
  pool.write_generation(1, _records(1))
  _edit_manifest(pool, 1, dataset_dir=pool.manifest(0)["dataset_dir"], num_prompts=len(TEXTS))
  with pytest.raises(
    ValueError, match=r"gen_000001\.json names dataset directory 'gen_000000-\w+/eva_pool/1\.0\.0'"
  ):
    pool.read_generation(1)
  # The next write refuses too, instead of deleting generation 1's data as if no manifest named it.
  with pytest.raises(ValueError, match="gen_000001.json names dataset directory"):
    pool.write_generation(2, _records(1))
  assert len(list(tmp_path.glob("gen_000001-*"))) == 1


def test_a_dataset_directory_renamed_to_another_generation_is_refused(tmp_path):
  # Generation 0's data copied under a name of generation 1: the dataset's own dataset_info.json
  # still says generation 0.
  pool = pool_lib.Pool(tmp_path)
  pool.write_generation(0, _records(0))
  pool.write_generation(1, _records(0))
  copy = tmp_path / "gen_000001-copied"
  shutil.copytree(tmp_path / pool.manifest(0)["dataset_dir"].split("/")[0], copy)
  _edit_manifest(pool, 1, dataset_dir=f"{copy.name}/eva_pool/1.0.0")
  with pytest.raises(
    ValueError, match=r"gen_000001\.json names dataset .*gen_000001-copied.*holds generation 0"
  ):
    pool.read_generation(1)


def test_a_manifest_claiming_another_generation_or_count_is_refused(tmp_path):
  pool = pool_lib.Pool(tmp_path)
  pool.write_generation(1, _records(1))
  _edit_manifest(pool, 1, generation=2)
  with pytest.raises(ValueError, match=r"gen_000001\.json, the manifest of generation 1, says generation 2"):
    pool.read_generation(1)
  _edit_manifest(pool, 1, generation=1, num_prompts=3)
  with pytest.raises(
    ValueError,
    match=rf"gen_000001\.json says 3 prompts, but its dataset .*gen_000001-\w+/eva_pool/1\.0\.0 holds {len(TEXTS) + 1}",
  ):
    pool.read_generation(1)
  _edit_manifest(pool, 1, num_prompts=len(TEXTS) + 1)
  assert len(pool.read_generation(1)) == len(TEXTS) + 1


def test_prompts_of_a_later_generation_are_refused(tmp_path):
  # A generation holds prompts created in it or before: later ones mean the data is another's.
  pool = pool_lib.Pool(tmp_path)
  pool.write_generation(0, _records(1))
  with pytest.raises(
    ValueError, match=r"pool generation 0 \(.*\) holds prompts of later generations \(g1-0\)"
  ):
    pool.read_generation(0)


def test_scores_of_another_generation_are_refused(tmp_path):
  pool = pool_lib.Pool(tmp_path)
  pool.write_generation(1, _records(1))
  pool.write_scores(
    1, [dataclasses.replace(_records(1)[-1], n=4, mean=0.25, max=1.0, min=0.0, std=0.4, info=0.1)]
  )
  path = tmp_path / "gen_000001.scores.json"
  path.write_text(json.dumps({**json.loads(path.read_text()), "generation": 3}))
  with pytest.raises(
    ValueError, match=r"gen_000001\.scores\.json, the scores of generation 1, says generation 3"
  ):
    pool.read_generation(1)


@pytest.mark.parametrize("keep", [0, 100, 0.5, -1])
def test_a_cut_short_shard_is_named_with_its_generation(tmp_path, keep):
  # A full disk or a copy cut short: array_record's errors ("Invalid Riegeli/records file", "should be
  # at least 64KB big") name no file; a shard cut at a block boundary reads back as empty records.
  pool = pool_lib.Pool(tmp_path)
  pool.write_generation(0, records_lib.seed_records([f"prompt {i} " * 20 for i in range(200)]))
  (shard,) = epath.Path(pool.dataset_dir(0)).glob("*array_record*")
  data = shard.read_bytes()
  end = {0.5: len(data) // 2, -1: len(data) - 1}.get(keep, keep)
  shard.write_bytes(data[:end])
  with pytest.raises(
    ValueError, match=rf"^pool generation 0: {shard} does not read \(.+\); the file is damaged"
  ) as error:
    pool.read_generation(0)
  assert "\n" not in str(error.value)
