"""The console report at the end of an eva run: held-out results before/after, the pool per generation, where files are."""

import collections

from etils import epath

from eva_jax.analysis import curriculum
from eva_jax.loop import metrics as metrics_lib

COARSE = ("<=2 digits", "3 digits", ">=4 digits", "other")  # end-of-run difficulty columns


def coarse_difficulty(label: str) -> str:
  """ "3+2+1" (operand digit counts, the addition task's difficulty) -> the longest operand's class."""
  digits = [int(d) for d in label.split("+") if d.isdigit()]
  if not digits:
    return "other"
  longest = max(digits)
  return COARSE[0] if longest <= 2 else COARSE[1] if longest == 3 else COARSE[2]


def final_report(workdir: epath.Path, pool_dir: str, seconds: float) -> str:
  """The end-of-run table: held-out results before/after, the pool per generation, where things are."""
  run = curriculum.Run(workdir, pool_dir)
  lines = [f"\n=== eva run finished in {seconds:.0f} s: {workdir} ==="]
  try:
    lines += ["held-out, per difficulty bucket (greedy):", curriculum.text_table(run.before_after())]
  except curriculum.RunDirError:
    pass
  sizes = {row["generation"]: row for row in run.pool_sizes()}
  mixes = {row["generation"]: row["counts"] for row in run.difficulty_mix()} if run.task else {}
  rows = []
  for g, row in sorted(sizes.items()):
    coarse = collections.Counter(coarse_difficulty(b) for b, n in mixes.get(g, {}).items() for _ in range(n))
    rows.append({"generation": g, "prompts": row["prompts"], "new": row["new"], **coarse})
  columns = ["generation", "prompts", "new", *(c for c in COARSE if any(c in r for r in rows))]
  lines += ["pool per generation (prompts by difficulty):", curriculum.text_table(rows, columns)]
  lines += [
    f"summary {workdir / 'summary.json'}; metrics {workdir / metrics_lib.JSONL_NAME} and "
    f"{workdir / 'tensorboard'}; pool {pool_dir or workdir / 'pool'}; checkpoints {workdir / 'checkpoints'}; "
    f"evaluations {workdir / 'eval'}; notebooks/curriculum.ipynb plots the curriculum (EVA_RUN_DIR={workdir})"
  ]
  return "\n".join(lines)
