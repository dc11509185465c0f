"""The model check: the smallest real end-to-end run of the stack (today's `make quickstart`).

On the configured mesh it builds the tokenizer and model, initialises (or loads) sharded params,
scores task problems' correct and wrong answers with the chunked log-prob function, writes the
params with orbax, restores them and checks the restored params score identically. Figures go to
stdout and `<workdir>/model_check.json`.
"""

import json
import time

from etils import epath
import jax
import numpy as np

from eva_jax import config as config_lib
from eva_jax.loop import setup
from eva_jax.models import batching
from eva_jax.models import logprobs
from eva_jax.models import params as params_lib
from eva_jax.parallel import distributed
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.parallel import partition
from eva_jax.tasks import addition


def _wrong_answer(problem: addition.Problem) -> str:
  return addition.Problem((*problem.operands[:-1], problem.operands[-1] + 1), problem.template).answer


def run(cfg: config_lib.RunConfig, workdir: epath.PathLike) -> dict:
  """Runs the check and returns its figures (also written to `<workdir>/model_check.json`)."""
  workdir = epath.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  start = time.perf_counter()
  solver = setup.build(cfg)
  mesh, tokenizer, model, shardings, params = (
    solver.mesh,
    solver.tokenizer,
    solver.model,
    solver.shardings,
    solver.params,
  )
  print(f"model {cfg.model.name}: {solver.describe()}")

  rng = np.random.default_rng(cfg.seed)
  problems = [addition.random_problem(rng) for _ in range(cfg.check.num_problems)]
  prompts = [p.prompt for p in problems] * 2
  answers = [p.answer for p in problems] + [_wrong_answer(p) for p in problems]
  rows = mesh.shape["data"] * mesh.shape["fsdp"]
  batch = batching.make_batch(tokenizer, prompts, answers, row_multiple=rows)
  place = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(mesh_lib.BATCH_AXES))
  arrays = [jax.device_put(a, place) for a in (batch.tokens, batch.input_mask, batch.response_mask)]
  score = logprobs.jitted_sequence_logprobs(model, batch.score_start, cfg.model.logprob_chunk, mesh)
  seq_lp = distributed.to_host(score(params, *arrays)[0])[: batch.num_real]  # global rows on every host
  correct, wrong = seq_lp[: len(problems)], seq_lp[len(problems) :]
  print(f"{'prompt':<48} {'answer':<22} {'logp(answer)':>12} {'logp(wrong)':>12}")
  for problem, c, w in zip(problems, correct, wrong):
    print(f"{problem.prompt[:48]:<48} {problem.answer:<22} {c:12.3f} {w:12.3f}")

  ckpt_dir = workdir / "params"
  if ckpt_dir.exists() and distributed.is_main_process():
    ckpt_dir.rmtree()
  distributed.barrier("model_check_clear_checkpoint")  # orbax saves collectively into a clear directory
  params_lib.save_params(ckpt_dir, params)
  restored = params_lib.restore_params(ckpt_dir, model, shardings)
  restored_lp = distributed.to_host(score(restored, *arrays)[0])[: batch.num_real]
  if not np.array_equal(restored_lp, seq_lp):
    raise RuntimeError(f"restored params score differently: max |diff| {np.abs(restored_lp - seq_lp).max()}")
  figures = {
    "num_params": int(sum(x.size for x in jax.tree.leaves(params))),
    "param_bytes_device0": partition.per_device_bytes(params),
    "mean_logp_answer": float(correct.mean()),
    "mean_logp_wrong": float(wrong.mean()),
    "checkpoint_roundtrip_equal": True,
    "seconds": time.perf_counter() - start,
  }
  if distributed.is_main_process():
    (workdir / "model_check.json").write_text(json.dumps(figures, indent=1))
  print(
    f"checkpoint {ckpt_dir}: restored params give identical log-probs; "
    f"done in {figures['seconds']:.1f}s; figures in {workdir / 'model_check.json'}"
  )
  return figures
