"""Metrics go to TensorBoard event files and a JSONL file that reads back."""

import json

import numpy as np
import tensorflow as tf

from eva_jax.loop import metrics


def test_scalars_and_histograms_round_trip(tmp_path):
  writer = metrics.MetricsWriter(tmp_path, enabled=True)
  writer.scalars(1, {"loss": 0.5, "reward/mean": np.float32(0.25), "kl": float("nan")})
  writer.histogram(1, "info", [0.1, 0.2, 0.9, np.nan], bins=4)
  writer.close()
  (tmp_path / metrics.JSONL_NAME).open("a").write('{"step": 2, "kind": "sca')  # torn line of a killed run
  records = metrics.read_jsonl(tmp_path)
  assert records[0] == {"step": 1, "kind": "scalars", "loss": 0.5, "reward/mean": 0.25, "kl": None}
  assert records[1]["name"] == "info" and sum(records[1]["counts"]) == 3 and len(records[1]["edges"]) == 5
  assert len(records) == 2
  events = list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
  assert events
  tags = {v.tag for e in tf.compat.v1.train.summary_iterator(str(events[0])) for v in e.summary.value}
  assert {"loss", "reward/mean", "info"} <= tags


def test_disabled_writer_writes_nothing(tmp_path):
  writer = metrics.MetricsWriter(tmp_path / "run", enabled=False)
  writer.scalars(0, {"loss": 1.0})
  writer.histogram(0, "info", [1.0])
  writer.close()
  assert not (tmp_path / "run").exists()
  assert metrics.read_jsonl(tmp_path / "run") == []


def test_the_rewrite_on_resume_drops_a_torn_last_line(tmp_path):
  # A kill (or a full disk) during an append leaves half a record and no newline; the resume's rewrite
  # must keep the committed records, drop the fragment, and leave a file that appends cleanly.
  writer = metrics.MetricsWriter(tmp_path, enabled=True)
  for step in (1, 2, 3):
    writer.scalars(step, {"loss": float(step)})
  writer.close()
  (tmp_path / metrics.JSONL_NAME).open("a").write('{"step": 4, "kind": "scalars", "loss": "4.')
  writer = metrics.MetricsWriter(tmp_path, enabled=True)
  assert writer.drop_after(lambda record: record["step"] <= 2) == 2  # step 3 and the torn line
  writer.scalars(3, {"loss": 30.0})
  writer.close()
  lines = (tmp_path / metrics.JSONL_NAME).read_text().splitlines()
  assert [json.loads(line)["loss"] for line in lines] == [1.0, 2.0, 30.0]


def test_a_torn_last_line_is_dropped_even_when_every_record_is_committed(tmp_path):
  writer = metrics.MetricsWriter(tmp_path, enabled=True)
  writer.scalars(1, {"loss": 1.0})
  writer.close()
  (tmp_path / metrics.JSONL_NAME).open("a").write('{"step": 2, "ki')
  writer = metrics.MetricsWriter(tmp_path, enabled=True)
  assert writer.drop_after(lambda record: True) == 1
  writer.scalars(2, {"loss": 2.0})
  writer.close()
  assert [r["loss"] for r in metrics.read_jsonl(tmp_path)] == [1.0, 2.0]
  assert (tmp_path / metrics.JSONL_NAME).read_text().endswith("}\n")


def test_a_new_writer_ends_a_torn_last_line_before_it_appends(tmp_path):
  # A start that stopped before checkpoint 0 is started again without a rewrite: its first record
  # must not be glued to the fragment the killed start left.
  (tmp_path / metrics.JSONL_NAME).write_text('{"step": 0, "kind": "scalars", "loss": 1.0}\n{"step": 1, "ki')
  writer = metrics.MetricsWriter(tmp_path, enabled=True)
  writer.scalars(1, {"loss": 2.0})
  writer.close()
  assert [r["loss"] for r in metrics.read_jsonl(tmp_path)] == [1.0, 2.0]
