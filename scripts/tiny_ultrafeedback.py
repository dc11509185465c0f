"""Writes a tiny prompt set in UltraFeedback's binarized schema, to try the paper's seeding route on CPU.

    .venv/bin/python scripts/tiny_ultrafeedback.py OUT_DIR [--rows 32]

`HuggingFaceH4/ultrafeedback_binarized` keeps, per row, `prompt` (str), `prompt_id` (str),
`chosen` and `rejected` (chats: lists of {"content", "role"}), `messages` (the chosen chat again),
`score_chosen` and `score_rejected` (float64), in splits such as `train_prefs`. This writes
`OUT_DIR/train_prefs.parquet` with that schema, whose prompts are the embedded task's sums (easy to
hard) and whose chosen/rejected answers are the reference and a wrong sum, so the tiny model and
the task reward can run eva from it: `--config.pool.seed_source=parquet
--config.pool.seed_path=OUT_DIR/train_prefs.parquet --config.pool.seed_field=messages`.
"""

import argparse
import hashlib
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

from eva_jax.tasks import get_task


def rows(count: int, task_name: str = "addition_lsb") -> list[dict]:
  task = get_task(task_name)
  per_bucket = -(-count // 7)  # the held-out set has 7 buckets, easy to hard
  out = []
  for prompt in task.eval_prompts(per_bucket)[:count]:
    right = task.reference(prompt)
    wrong = right[:-1] + str((int(right[-1]) + 1) % 10)
    chosen = [{"content": prompt, "role": "user"}, {"content": right, "role": "assistant"}]
    rejected = [{"content": prompt, "role": "user"}, {"content": wrong, "role": "assistant"}]
    out.append(
      {
        "prompt": prompt,
        "prompt_id": hashlib.sha256(prompt.encode()).hexdigest(),
        "chosen": chosen,
        "rejected": rejected,
        "messages": chosen,
        "score_chosen": 10.0,
        "score_rejected": 1.0,
      }
    )
  return out


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("out_dir", type=pathlib.Path)
  parser.add_argument("--rows", type=int, default=32)
  args = parser.parse_args()
  args.out_dir.mkdir(parents=True, exist_ok=True)
  path = args.out_dir / "train_prefs.parquet"
  pq.write_table(pa.Table.from_pylist(rows(args.rows)), path)
  print(f"wrote {args.rows} rows in UltraFeedback's schema to {path}")


if __name__ == "__main__":
  main()
