"""Seed loaders: JSONL (incl. Hugging Face-style exports), CSV, TFDS; malformed lines with line numbers."""

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

from eva_jax import tasks
from eva_jax.creator import config as creator_config
from eva_jax.creator import pool as pool_lib
from eva_jax.creator import records as records_lib
from eva_jax.creator import seeds

JSONL_LINES = [
  json.dumps({"prompt": "What is 1 + 2?", "id": 1}),  # 1
  json.dumps({"prompt": "Use {prompt} and ${x}", "source": "hf"}),  # 2
  "",  # 3 blank: ignored
  "{not json",  # 4
  json.dumps(["a", "list"]),  # 5
  json.dumps({"question": "no prompt field"}),  # 6
  json.dumps({"prompt": 42}),  # 7
  json.dumps({"prompt": "   "}),  # 8
  json.dumps(
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}]}
  ),  # 9
  json.dumps({"prompt": "二と三を足すと？"}, ensure_ascii=False),  # 10
]


def _write_jsonl(path, lines, tail=b""):
  path.write_bytes("\n".join(lines).encode() + b"\n" + tail)
  return path


def test_jsonl_skip_reports_line_numbers(tmp_path):
  path = _write_jsonl(tmp_path / "seeds.jsonl", JSONL_LINES, tail=b'{"prompt": "bad \xff byte"}\n')
  load = seeds.load_file(path, "jsonl")
  assert load.prompts == ["What is 1 + 2?", "Use {prompt} and ${x}", "Hi there", "二と三を足すと？"]
  assert [n for n, _ in load.malformed] == [4, 5, 6, 7, 8, 11]
  reasons = dict(load.malformed)
  assert reasons[4].startswith("invalid JSON") and reasons[5] == "not a JSON object (list)"
  assert reasons[6] == "no field 'prompt'" and "not a string" in reasons[7]
  assert reasons[8] == "field 'prompt' is empty" and reasons[11] == "not UTF-8"


def test_jsonl_with_a_byte_order_mark_reads_its_first_line(tmp_path):
  path = tmp_path / "bom.jsonl"
  path.write_bytes(b"\xef\xbb\xbf" + "\n".join(JSONL_LINES[:2]).encode() + b"\n")
  load = seeds.load_file(path, "jsonl", on_malformed="fail")
  assert load.prompts == ["What is 1 + 2?", "Use {prompt} and ${x}"] and load.lines == [1, 2]


def test_a_lone_surrogate_is_a_malformed_line_not_a_crash_later(tmp_path):
  path = _write_jsonl(tmp_path / "s.jsonl", [JSONL_LINES[0], '{"prompt": "half a pair \\ud83d here"}'])
  load = seeds.load_file(path, "jsonl")
  assert load.prompts == ["What is 1 + 2?"]
  assert load.malformed == [(2, "field 'prompt' holds a lone surrogate (\\ud800-\\udfff), not text")]
  for prompt in load.prompts:
    prompt.encode("utf-8")  # what the pool write does


def test_seeds_too_long_to_sample_are_refused_by_line(tmp_path):
  lines = [json.dumps({"prompt": p}) for p in ["short one", "x" * 50, "", "another short", "y" * 80]]
  load = seeds.load_file(_write_jsonl(tmp_path / "long.jsonl", lines), "jsonl")
  limit = seeds.PromptLimit(count=len, max_tokens=20, what="the cache")
  kept, refused = seeds.refuse_unfit(load, limit, "skip")
  assert kept.prompts == ["short one", "another short"] and kept.lines == [1, 4] and refused == 2
  assert kept.malformed[-2:] == [
    (2, "50 tokens with the chat template; the cache leaves 20"),
    (5, "80 tokens with the chat template; the cache leaves 20"),
  ]
  with pytest.raises(
    ValueError, match=r"long.jsonl: 2 too long line\(s\): line 2: 50 tokens.*; line 5: 80 tokens"
  ):
    seeds.refuse_unfit(load, limit, "fail")


def test_jsonl_fail_lists_the_bad_lines(tmp_path):
  path = _write_jsonl(tmp_path / "seeds.jsonl", JSONL_LINES)
  with pytest.raises(
    ValueError, match=r"seeds.jsonl: 5 malformed line\(s\): line 4: invalid JSON.*; line 5: not"
  ):
    seeds.load_file(path, "jsonl", on_malformed="fail")
  good = _write_jsonl(tmp_path / "good.jsonl", [JSONL_LINES[0], JSONL_LINES[1]])
  assert seeds.load_file(good, "jsonl", on_malformed="fail").prompts == [
    "What is 1 + 2?",
    "Use {prompt} and ${x}",
  ]


def test_jsonl_other_field_and_limit(tmp_path):
  rows = [json.dumps({"instruction": f"Task {i}", "output": "..."}) for i in range(10)]
  path = _write_jsonl(tmp_path / "alpaca.jsonl", rows)
  load = seeds.load_file(path, "jsonl", field="instruction", limit=3)
  assert load.prompts == ["Task 0", "Task 1", "Task 2"] and load.malformed == []


def test_csv(tmp_path):
  path = tmp_path / "seeds.csv"
  path.write_text(
    "\ufeffid,prompt,notes\n"  # a BOM, as spreadsheet exports write
    '1,"Add 1, 2 and 3.",x\n'
    '2,"A prompt over\ntwo lines",y\n'
    "3,,empty\n"
    "4,too,many,cells\n"
    "\n"
    '5,"Use {prompt}",z\n',
    encoding="utf-8",
  )
  load = seeds.load_file(path, "csv")
  assert load.prompts == ["Add 1, 2 and 3.", "A prompt over\ntwo lines", "Use {prompt}"]
  assert load.malformed == [(5, "column 'prompt' is empty"), (6, "4 cells, the header has 3")]
  with pytest.raises(
    ValueError, match=r"seeds.csv: CSV has no column 'text'; header: \['id', 'prompt', 'notes'\]"
  ):
    seeds.load_file(path, "csv", field="text")
  with pytest.raises(ValueError, match="line 5: column 'prompt' is empty"):
    seeds.load_file(path, "csv", on_malformed="fail")


@pytest.mark.parametrize("file_format", ["array_record", "tfrecord"])
def test_tfds_directory(tmp_path, file_format):
  builder = tfds.dataset_builders.store_as_tfds_dataset(
    name="my_prompts",
    version="1.0.0",
    features=tfds.features.FeaturesDict({"prompt": tfds.features.Text(), "score": np.float32}),
    split_datasets={"train": [(i, {"prompt": f"Prompt {i} {{x}}", "score": 0.5}) for i in range(6)]},
    data_dir=tmp_path / "tfds",
    file_format=file_format,
    disable_shuffling=True,
  )
  load = seeds.load_tfds(builder.data_dir, "prompt", limit=4)
  assert load.prompts == [f"Prompt {i} {{x}}" for i in range(4)]
  assert len(seeds.load_tfds(builder.data_dir, "prompt").prompts) == 6
  with pytest.raises(ValueError, match="no feature 'text'"):
    seeds.load_tfds(builder.data_dir, "text")
  # An earlier run's pool generation is a TFDS dataset too.
  pool = pool_lib.Pool(tmp_path / "pool")
  pool.write_generation(0, records_lib.seed_records(["A.", "B."]))
  assert seeds.load_tfds(pool.dataset_dir(0), "text").prompts == ["A.", "B."]


def test_load_seeds_from_config(tmp_path):
  task = creator_config.PoolConfig(num_seeds=12)
  assert seeds.load_seeds(task, task="addition", seed=3).prompts == tasks.get_task("addition").seed_prompts(
    12, 3
  )
  path = _write_jsonl(tmp_path / "s.jsonl", JSONL_LINES[:2])
  config = creator_config.PoolConfig(seed_source="jsonl", seed_path=str(path), num_seeds=0)
  assert seeds.load_seeds(config, task="addition", seed=0).prompts == [
    "What is 1 + 2?",
    "Use {prompt} and ${x}",
  ]
