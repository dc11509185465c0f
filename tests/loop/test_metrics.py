"""Metrics go to TensorBoard event files and a JSONL file that reads back."""

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
