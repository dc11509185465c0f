"""Seeds from Parquet files and Hugging Face `save_to_disk` directories, written by pyarrow and `datasets`."""

import os
import pathlib
import subprocess
import sys

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # nothing is downloaded; only local writes
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import pytest  # noqa: E402

from eva_jax.creator import config as creator_config  # noqa: E402
from eva_jax.creator import seeds  # noqa: E402
from tests.hang_guard import HANG_GUARD_S  # noqa: E402

# UltraFeedback's binarized schema (HuggingFaceH4/ultrafeedback_binarized): a `prompt` string and
# `messages` / `chosen` chats of {"content", "role"} structs.
ROWS = [
  {
    "prompt": "Name three rivers.",
    "prompt_id": "a",
    "messages": [
      {"content": "Name three rivers.", "role": "user"},
      {"content": "Nile, Amazon, Rhine.", "role": "assistant"},
    ],
  },
  {
    "prompt": "   ",
    "prompt_id": "b",
    "messages": [{"content": "Be brief.", "role": "system"}],
  },  # 2: blank / no user turn
  {"prompt": None, "prompt_id": "c", "messages": None},  # 3: nulls
  {
    "prompt": "二と三を足すと？",
    "prompt_id": "d",
    "messages": [{"content": "Be brief.", "role": "system"}, {"content": "二と三を足すと？", "role": "user"}],
  },
  {"prompt": "Sum 4 and 5.", "prompt_id": "e", "messages": [{"content": "Sum 4 and 5.", "role": "user"}]},
]


def _dataset(rows=ROWS) -> datasets.Dataset:
  return datasets.Dataset.from_list(rows)


def test_parquet_file_string_column_with_row_numbers(tmp_path):
  path = tmp_path / "train.parquet"
  _dataset().to_parquet(str(path))
  load = seeds.load_file(path, "parquet", "prompt")
  assert load.prompts == ["Name three rivers.", "二と三を足すと？", "Sum 4 and 5."]
  assert load.lines == [1, 4, 5]
  assert load.malformed == [(2, "column 'prompt' is empty"), (3, "column 'prompt' is null")]


def test_parquet_messages_column_gives_the_first_user_turn(tmp_path):
  path = tmp_path / "train.parquet"
  _dataset().to_parquet(str(path))
  load = seeds.load_file(path, "parquet", "messages")
  assert load.prompts == ["Name three rivers.", "二と三を足すと？", "Sum 4 and 5."]
  assert [n for n, _ in load.malformed] == [2, 3]
  assert "chat with a user turn" in load.malformed[0][1]


def test_parquet_directory_reads_files_in_name_order_and_stops_at_the_limit(tmp_path):
  for i in range(3):  # 3 files x 2500 rows, several record batches each
    table = pa.table({"prompt": [f"q{i}-{j}" for j in range(2500)]})
    pq.write_table(table, tmp_path / f"part-{i}.parquet", row_group_size=1000)
  load = seeds.load_file(tmp_path, "parquet", "prompt", limit=5200)
  assert len(load.prompts) == 5200
  assert load.prompts[2499:2501] == ["q0-2499", "q1-0"]
  assert load.prompts[-1] == "q2-199" and load.lines[-1] == 5200


def test_hf_save_to_disk_dataset_and_dataset_dict(tmp_path):
  _dataset().save_to_disk(str(tmp_path / "one"))
  assert seeds.load_file(tmp_path / "one", "hf_disk", "prompt").prompts[-1] == "Sum 4 and 5."
  both = datasets.DatasetDict({"train_prefs": _dataset(), "test_prefs": _dataset(ROWS[3:])})
  both.save_to_disk(str(tmp_path / "dict"), num_shards={"train_prefs": 2, "test_prefs": 1})
  train = seeds.load_file(tmp_path / "dict", "hf_disk", "messages", split="train_prefs")
  assert train.prompts == ["Name three rivers.", "二と三を足すと？", "Sum 4 and 5."]  # across 2 shards
  assert train.lines == [1, 4, 5]
  test = seeds.load_file(tmp_path / "dict", "hf_disk", "prompt", split="test_prefs")
  assert test.prompts == ["二と三を足すと？", "Sum 4 and 5."]
  with pytest.raises(ValueError, match=r"no split 'train'; splits: \['train_prefs', 'test_prefs'\]"):
    seeds.load_file(tmp_path / "dict", "hf_disk", "prompt")


def test_fail_policy_lists_rows(tmp_path):
  path = tmp_path / "train.parquet"
  _dataset().to_parquet(str(path))
  with pytest.raises(ValueError, match=r"train.parquet: 2 malformed line\(s\): line 2: .*line 3: "):
    seeds.load_file(path, "parquet", "prompt", on_malformed="fail")


def _parquet(directory):
  _dataset().to_parquet(str(directory / "x.parquet"))
  return directory / "x.parquet"


def _not_parquet(directory):
  (directory / "x.parquet").write_bytes(b"not parquet at all")
  return directory / "x.parquet"


def _saved(directory):
  _dataset().save_to_disk(str(directory / "x"))
  return directory / "x"


def _damaged_state(directory):
  (directory / "x").mkdir()
  (directory / "x" / "state.json").write_text("{")
  return directory / "x"


@pytest.mark.parametrize(
  "kind, make, match",
  [
    ("parquet", _parquet, r"x.parquet has no column 'text'; columns: \['prompt', 'prompt_id', 'messages'\]"),
    ("parquet", _not_parquet, "x.parquet is not a Parquet file"),
    ("parquet", lambda d: d, r"directory holds no \*.parquet file"),
    ("parquet", lambda d: d / "missing.parquet", "no such file"),
    ("hf_disk", _saved, "no column 'text'"),
    ("hf_disk", lambda d: d, r"not a `save_to_disk` directory"),
    ("hf_disk", _damaged_state, "state.json is damaged"),
  ],
)
def test_unusable_inputs_name_the_path_and_the_problem(tmp_path, kind, make, match):
  target = make(tmp_path)
  with pytest.raises(ValueError, match=match) as info:
    seeds.load_file(target, kind, "text")
  assert str(info.value).startswith(f"{target}: ")


def test_load_seeds_from_config_passes_the_split(tmp_path):
  datasets.DatasetDict({"train_gen": _dataset()}).save_to_disk(str(tmp_path / "uf"))
  config = creator_config.PoolConfig(
    seed_source="hf_disk",
    seed_path=str(tmp_path / "uf"),
    seed_field="prompt",
    seed_split="train_gen",
    num_seeds=2,
  )
  assert seeds.load_seeds(config, task="", seed=0).prompts == ["Name three rivers.", "二と三を足すと？"]


def test_tiny_ultrafeedback_script_writes_the_schema_the_seeds_read(tmp_path):
  root = pathlib.Path(__file__).resolve().parents[2]
  command = [sys.executable, "scripts/tiny_ultrafeedback.py", str(tmp_path), "--rows", "20"]
  subprocess.run(command, cwd=root, check=True, capture_output=True, timeout=HANG_GUARD_S)
  table = pq.read_table(tmp_path / "train_prefs.parquet")
  assert table.column_names == [
    "prompt",
    "prompt_id",
    "chosen",
    "rejected",
    "messages",
    "score_chosen",
    "score_rejected",
  ]
  from_messages = seeds.load_file(tmp_path / "train_prefs.parquet", "parquet", "messages")
  assert from_messages.prompts == table.column("prompt").to_pylist() and len(from_messages.prompts) == 20
