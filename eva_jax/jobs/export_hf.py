"""`--mode=export_hf`: a run's checkpoint as a Hugging Face model directory.

`python -m eva_jax.main --config=<the run's config> --mode=export_hf --workdir=RUN --export_dir=DIR
[--step=K] [--export_dtype=float32] [--replace]` writes checkpoint K of RUN (default: the newest;
offline step k = round k, online = the step saved) as a directory that
`transformers.AutoModelForCausalLM.from_pretrained(DIR)` and `vllm serve DIR` read
(`models.hf_export`). A work directory without checkpoints exports the configured model itself
(`model.checkpoint`, or its init): an orbax Gemma checkpoint converted to Hugging Face.
"""

import sys

from etils import epath
import jax

from eva_jax.loop import run_state
from eva_jax.loop import setup
from eva_jax.models import architectures
from eva_jax.models import hf_export
from eva_jax.models import hf_format
from eva_jax.models import hf_import
from eva_jax.models import params as params_lib
from eva_jax.models import tokenizer as tokenizer_lib


def _report(message: str) -> None:
  if jax.process_index() == 0:
    print(f"eva_jax: {message}", file=sys.stderr, flush=True)


def _params_of(checkpoints: run_state.RunCheckpoints, step: int, solver: setup.SolverModel):
  meta = checkpoints.meta(step)
  if meta.get("step"):  # online: the whole train state was saved
    tree, _ = checkpoints.restore(step, None)
    return jax.device_put(tree["params"], solver.shardings), meta
  target = params_lib.sharded_target(params_lib.abstract_params(solver.model), solver.shardings)
  params, _ = checkpoints.restore(step, target)
  return params, meta


def special_ids(tokenizer) -> dict:
  special = tokenizer.special_tokens
  return {
    "bos_token_id": int(special.BOS),
    "eos_token_id": sorted({int(special.EOS), int(special.END_OF_TURN)}),
    "pad_token_id": int(special.PAD),
  }


def run(
  cfg,
  workdir: epath.PathLike,
  export_dir: str,
  *,
  step: int | None = None,
  dtype: str = "bfloat16",
  replace: bool = False,
) -> epath.Path:
  """Exports checkpoint `step` of the run in `workdir` to `export_dir`; returns the directory written."""
  if not export_dir:
    raise ValueError("--mode=export_hf needs --export_dir (the Hugging Face directory to write)")
  out = epath.Path(export_dir).absolute()
  if dtype not in hf_export.DTYPES:
    raise ValueError(f"--export_dtype {dtype!r} is not one of {sorted(hf_export.DTYPES)}")
  hf_format.family_info(architectures.ARCHITECTURES[cfg.model.name].family)
  if out.exists() and not replace:  # before minutes of loading
    raise ValueError(f"export directory {out} already exists (pass --replace to overwrite it)")
  workdir = epath.Path(workdir)
  has_run = (workdir / "checkpoints").exists()
  checkpoints = run_state.RunCheckpoints(workdir, 1_000_000) if has_run else None  # never deletes here
  steps = sorted(checkpoints.manager.all_steps()) if checkpoints else []
  if step is not None and step not in steps:
    raise ValueError(f"--step {step}: {workdir / 'checkpoints'} holds steps {steps or 'none'}")
  solver = setup.build(cfg, load_params=not steps)
  if steps:
    chosen = steps[-1] if step is None else step
    params, meta = _params_of(checkpoints, chosen, solver)
    _report(
      f"exporting {workdir} checkpoint {chosen} (round {meta.get('round')}, step {meta.get('step', 0)}) to {out}"
    )
  else:
    params = solver.params
    _report(
      f"{workdir} holds no run checkpoint: exporting the configured model ({cfg.model.checkpoint or cfg.model.init}) to {out}"
    )
  checkpoint = cfg.model.checkpoint
  hf_export.export(
    params,
    solver.model.config,
    architectures.ARCHITECTURES[cfg.model.name].family,
    out,
    dtype=dtype,
    special_ids=special_ids(solver.tokenizer),
    tokenizer_model=cfg.model.tokenizer or tokenizer_lib.EMBEDDED_MODEL_PATH,
    tokenizer_dir=checkpoint if checkpoint and hf_import.is_hf_directory(checkpoint) else None,
    replace=replace,
  )
  _report(f"wrote {out}")
  return out
