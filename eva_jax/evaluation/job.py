"""The config-driven entry points: what the loop calls after a round and `--mode=eval` calls once.

`evaluate(...)` runs `heldout.evaluate` with the settings of `config.eval`; `write(...)` stores a
result as `metrics.json`, `summary.txt` and `responses.jsonl`; `export_benchmarks(...)` writes the
answer files of every benchmark whose question file `config.eval.export` names.
"""

import json
import math

from etils import epath
import jax

from eva_jax.evaluation import exports
from eva_jax.evaluation import generation
from eva_jax.evaluation import heldout
from eva_jax.evaluation.config import EvalConfig


def evaluate(
  model,
  params,
  tokenizer,
  reward_source,
  cfg: EvalConfig,
  *,
  mesh: jax.sharding.Mesh | None = None,
  reference_params=None,
  reference: heldout.Responses | None = None,
  nonfinite: str = "drop",
  progress: bool | None = None,
) -> heldout.EvalResult:
  """`heldout.evaluate` on the held-out prompts `cfg` names, with its sampling and statistics.

  `reference_params`: from `heldout.load_reference(cfg.reference, ...)`; or pass the `reference` of an
  earlier result to reuse its responses. `nonfinite`: `config.reward.nonfinite`.
  """
  return heldout.evaluate(
    model,
    params,
    tokenizer,
    heldout.heldout_prompts(cfg),
    reward_source,
    cfg.sampling(),
    jax.random.key(cfg.seed),
    mesh,
    reference_params=reference_params,
    reference=reference,
    task=heldout.heldout_task(cfg),
    nonfinite=nonfinite,
    tie_tolerance=cfg.tie_tolerance,
    bootstrap=cfg.bootstrap,
    confidence=cfg.confidence,
    seed=cfg.seed,
    progress=progress,
  )


def write(result: heldout.EvalResult, out_dir: epath.PathLike) -> epath.Path:
  """Writes `metrics.json`, `summary.txt` and `responses.jsonl` (one row per response) to `out_dir`."""
  out_dir = epath.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  # NaN (e.g. a bucket whose rewards were all dropped) is not JSON: it becomes null.
  metrics = {k: v if math.isfinite(v) else None for k, v in result.metrics().items()}
  (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
  (out_dir / "summary.txt").write_text(result.summary() + "\n")
  rows = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in result.records())
  (out_dir / "responses.jsonl").write_text(rows)
  return out_dir


def export_benchmarks(
  model, params, tokenizer, cfg: EvalConfig, workdir: epath.PathLike, *, mesh: jax.sharding.Mesh | None = None
) -> list[exports.Exported]:
  """Answer files for the configured benchmarks under `cfg.export.dir` ("" = `<workdir>/benchmarks`)."""
  respond_for = lambda benchmark: generation.Responder(
    model,
    params,
    tokenizer,
    cfg.export.sampling(benchmark),
    jax.random.key(cfg.seed),
    mesh,
    long_prompts=cfg.export.long_prompts,
  )
  return exports.run_exports(respond_for, cfg.export, cfg.export.dir or epath.Path(workdir) / "benchmarks")
