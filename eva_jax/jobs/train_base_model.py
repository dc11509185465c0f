"""Trains the embedded task's base model (`eva_jax/models/base_model.py`, `base_model.RECIPE`) and re-measures the shipped one.

python -m eva_jax.jobs.train_base_model              # rebuild eva_jax/assets/ (about 10 min on 2 cores)
python -m eva_jax.jobs.train_base_model --check      # the shipped base's held-out table vs the recorded one
"""

import dataclasses
import json
import pathlib
import sys
import time

from absl import app
from absl import flags
import flax
import jax
import numpy as np
import tqdm

from eva_jax.models import architectures
from eva_jax.models import base_model
from eva_jax.models import batching
from eva_jax.models import params as params_lib
from eva_jax.models import tokenizer as tokenizer_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.sampling import sampler
from eva_jax.solver import optim
from eva_jax.solver import steps
from eva_jax.solver import train_state
from eva_jax.tasks import addition


def train(recipe: base_model.Recipe, *, on_eval=None, eval_every: int = 0):
  """Trains the base; returns (model, params). `on_eval(step, model, params)` every `eval_every` steps."""
  model = architectures.build_model(recipe.model)
  tokenizer = tokenizer_lib.load_tokenizer("embedded")
  mesh = mesh_lib.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  shardings = params_lib.shardings_for(model, mesh)
  params = params_lib.init_params(model, jax.random.key(recipe.seed), shardings)
  opt_cfg = optim.OptimizerConfig(learning_rate=recipe.learning_rate, warmup_frac=0.05, weight_decay=0.0)
  optimizer = optim.make_optimizer(opt_cfg)
  state_shardings = train_state.state_shardings(optimizer, shardings, mesh)
  state = train_state.create_train_state(params, optimizer, state_shardings, total_steps=recipe.steps)
  step = steps.make_sft_step(steps.StepSettings(model, opt_cfg, state_shardings, mesh))
  rng = np.random.default_rng(recipe.seed)
  bar = tqdm.tqdm(range(recipe.steps), desc="base model (SFT)", unit="step")
  for i in bar:
    problems = [base_model.training_problem(rng, recipe) for _ in range(recipe.batch_size)]
    tb = batching.make_batch(
      tokenizer, [p.prompt for p in problems], [p.answer for p in problems], length_multiple=16
    )
    state, metrics = step(state, steps.sequence_batch(tb), jax.random.key(i))
    if i % 50 == 0:
      bar.set_postfix(nll=f"{float(metrics['nll']):.3f}")
    if eval_every and on_eval is not None and (i + 1) % eval_every == 0:
      on_eval(i + 1, model, state.params)
  return model, state.params


def _sample_texts(model, params, prompts, num_samples: int, temperature: float, seed: int) -> list[str]:
  config = sampler.SamplingConfig(
    num_samples=num_samples,
    temperature=temperature,
    top_p=0.9 if temperature else 1.0,
    max_new_tokens=24,
    batch_size=256,
    max_cache_length=128,
  )
  tokenizer = tokenizer_lib.load_tokenizer("embedded")
  return list(
    sampler.sample(model, params, tokenizer, prompts, config, jax.random.key(seed), progress=False).text
  )


def frontier_table(
  model,
  params,
  *,
  per_bucket: int = base_model.TABLE_PER_BUCKET,
  num_samples: int = 6,
  reversed_operands: bool = True,
) -> dict:
  """Per held-out bucket: greedy exact match and, at temperature 0.7, pass@n and the share with a spread.

  Returns {bucket: {"exact", "pass_at_n", "spread"}} on `addition.eval_problems(per_bucket)` in the
  given prompt format; `num_samples=0` measures greedy exact match only.
  """
  problems = addition.eval_problems(per_bucket, reversed_operands=reversed_operands)
  prompts = [p.prompt for p in problems]
  labels = np.array([p.difficulty for p in problems])
  greedy = _sample_texts(model, params, prompts, 1, 0.0, 0)
  exact = np.array([t.strip() == p.answer for p, t in zip(problems, greedy)])
  hot = np.zeros((len(problems), max(num_samples, 1)))
  if num_samples:
    texts = _sample_texts(model, params, prompts, num_samples, 0.7, 1)
    hot = np.array([addition.grade(problems[i // num_samples], t) for i, t in enumerate(texts)])
    hot = hot.reshape(len(problems), num_samples)
  table = {}
  for bucket in dict.fromkeys(labels):
    rows = labels == bucket
    table[str(bucket)] = {"exact": float(exact[rows].mean())}
    if num_samples:
      table[str(bucket)] |= {
        "pass_at_n": float((hot[rows] == 1.0).any(axis=1).mean()),
        "spread": float((np.ptp(hot[rows], axis=1) > 0).mean()),
      }
  return table


def format_table(table: dict) -> str:
  lines = [f"{'bucket':8} {'exact':>6} {'pass@6':>7} {'spread':>7}"]
  for bucket, row in table.items():
    hot = f" {row['pass_at_n']:7.2f} {row['spread']:7.2f}" if "pass_at_n" in row else ""
    lines.append(f"{bucket:8} {row['exact']:6.2f}{hot}")
  return "\n".join(lines)


def save(
  params, recipe: base_model.Recipe, table: dict, seconds: float, out: pathlib.Path = base_model.ASSETS
) -> None:
  """Writes the params and the record beside them (the record last: it marks a finished asset)."""
  out.mkdir(parents=True, exist_ok=True)
  host = jax.device_get(params)
  (out / base_model.PARAMS_PATH.name).write_bytes(flax.serialization.msgpack_serialize(host))
  (out / base_model.RECORD_PATH.name).write_text(
    json.dumps(
      {
        "recipe": dataclasses.asdict(recipe),
        "table": table,
        "per_bucket": base_model.TABLE_PER_BUCKET,
        "train_seconds": seconds,
      },
      indent=1,
    )
  )


def check_shipped(record: dict | None = None, num_samples: int = 6) -> tuple[dict, float]:
  """Re-measures the shipped base's held-out table; returns (table, largest exact-match difference)."""
  record = record or base_model.load_record()
  model = architectures.build_model(record["recipe"]["model"])
  mesh = mesh_lib.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  params = base_model.load_params(model, params_lib.shardings_for(model, mesh))
  table = frontier_table(
    model,
    params,
    per_bucket=record["per_bucket"],
    num_samples=num_samples,
    reversed_operands=record["recipe"]["reversed_operands"],
  )
  worst = max(abs(table[b]["exact"] - row["exact"]) for b, row in record["table"].items())
  return table, worst


def main(argv) -> int:
  del argv
  if FLAGS.check:
    table, worst = check_shipped()
    print(format_table(table))
    print(
      f"largest exact-match difference to the record: {worst:.3f} (tolerance {base_model.TABLE_TOLERANCE})"
    )
    return int(worst > base_model.TABLE_TOLERANCE)
  recipe = base_model.recipe_with(FLAGS.set)
  print(f"training the base: {recipe}")
  start = time.perf_counter()
  model, params = train(
    recipe,
    eval_every=FLAGS.eval_every,
    on_eval=lambda i, m, p: print(
      f"\nstep {i}\n{format_table(frontier_table(m, p, reversed_operands=recipe.reversed_operands))}",
      flush=True,
    ),
  )
  seconds = time.perf_counter() - start
  table = frontier_table(model, params, reversed_operands=recipe.reversed_operands)
  print(format_table(table))
  out = pathlib.Path(FLAGS.out)
  save(params, recipe, table, seconds, out)
  print(
    f"wrote {out / base_model.PARAMS_PATH.name} ({(out / base_model.PARAMS_PATH.name).stat().st_size:,} bytes) and {out / base_model.RECORD_PATH.name}"
  )
  return 0


if __name__ == "__main__":
  # Flags are defined here, not at import: tests and bench/frontier.py import this module.
  flags.DEFINE_bool("check", False, "Re-measure the shipped base's held-out table and compare.")
  flags.DEFINE_integer("eval_every", 0, "Print the frontier table every this many steps.")
  flags.DEFINE_string("out", str(base_model.ASSETS), "Directory the params and record are written to.")
  flags.DEFINE_multi_string("set", [], "Recipe overrides, e.g. --set=frontier_share=0.1.")
  FLAGS = flags.FLAGS
  sys.exit(app.run(main))
