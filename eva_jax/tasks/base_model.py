"""The embedded task's shipped base model: the "instruct model" the quickstart and the ablation start from.

eva post-trains an instruct model; the embedded demo does too. The base is a tiny Gemma-architecture
model trained once, offline, by SFT on reference answers drawn from `RECIPE`'s difficulty mix: mostly
seed-difficulty sums (operands of at most 2 digits), where it ends reliable, plus a small share of
sums with a 3-digit operand, where it ends right only sometimes. That share places the solver's
frontier one step beyond the seeds, where its 6 samples disagree (a reward spread for the creator's
regret proxy) and where training on its own correct answers raises held-out accuracy: the mechanism
eva needs (see bench/RESULTS.md, "The frontier").

    python -m eva_jax.tasks.base_model              # rebuild eva_jax/assets/ (about 10 min on 2 cores)
    python -m eva_jax.tasks.base_model --check      # the shipped base's held-out table vs the recorded one

The params ship as one msgpack file (`flax.serialization`), the recipe and the held-out table that
came out of it in a JSON file beside it.
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
from eva_jax.models import batching
from eva_jax.models import params as params_lib
from eva_jax.models import tokenizer as tokenizer_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.sampling import sampler
from eva_jax.solver import optim
from eva_jax.solver import steps
from eva_jax.solver import train_state
from eva_jax.tasks import addition

ASSETS = pathlib.Path(__file__).parent.parent / "assets"
PARAMS_PATH = ASSETS / "base_tiny.msgpack"
RECORD_PATH = ASSETS / "base_tiny.json"
TABLE_PER_BUCKET = 100  # held-out prompts per bucket in the recorded table
TABLE_TOLERANCE = 0.03  # recorded vs re-measured exact match per bucket (float rounding of other CPUs)


@dataclasses.dataclass(frozen=True)
class Recipe:
  """How the base is trained: model, SFT schedule and the difficulty mix of its training sums."""

  model: str = "tiny"  # architecture name (eva_jax/models/architectures.py)
  steps: int = 3000  # SFT steps
  batch_size: int = 64  # sums per step
  learning_rate: float = 2e-3  # peak (cosine, 5% warmup)
  seed: int = 0  # init and data seed
  frontier_share: float = 0.03  # share of training sums with one 3-digit operand (the frontier)
  seed_max_digits: int = 2  # seed difficulty: operands of at most this many digits
  reversed_operands: bool = True  # operands written least-significant digit first (task addition_lsb)


RECIPE = Recipe()
# The tasks whose prompts the base was trained on (the embedded sums in the base's prompt format).
TASKS = ("addition_lsb", "addition_lsb_exact") if RECIPE.reversed_operands else ("addition", "addition_exact")


def training_problem(rng: np.random.Generator, recipe: Recipe) -> addition.Problem:
  """One training sum: seed difficulty, or with probability `frontier_share` a 3-digit operand."""
  if rng.random() < recipe.frontier_share:
    other = int(rng.integers(1, recipe.seed_max_digits + 2))
    digits = [recipe.seed_max_digits + 1, other]
    rng.shuffle(digits)
    operands = tuple(addition.random_operand(rng, d) for d in digits)
    template = int(rng.integers(len(addition.PROMPT_TEMPLATES)))
    return addition.Problem(operands, template, recipe.reversed_operands)
  return addition.random_problem(rng, recipe.seed_max_digits, reversed_operands=recipe.reversed_operands)


def train(recipe: Recipe, *, on_eval=None, eval_every: int = 0):
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
    problems = [training_problem(rng, recipe) for _ in range(recipe.batch_size)]
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
  model, params, *, per_bucket: int = TABLE_PER_BUCKET, num_samples: int = 6, reversed_operands: bool = True
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


def save(params, recipe: Recipe, table: dict, seconds: float, out: pathlib.Path = ASSETS) -> None:
  """Writes the params and the record beside them (the record last: it marks a finished asset)."""
  out.mkdir(parents=True, exist_ok=True)
  host = jax.device_get(params)
  (out / PARAMS_PATH.name).write_bytes(flax.serialization.msgpack_serialize(host))
  (out / RECORD_PATH.name).write_text(
    json.dumps(
      {
        "recipe": dataclasses.asdict(recipe),
        "table": table,
        "per_bucket": TABLE_PER_BUCKET,
        "train_seconds": seconds,
      },
      indent=1,
    )
  )


def load_record() -> dict:
  if not RECORD_PATH.exists():
    raise FileNotFoundError(
      f"no base model record at {RECORD_PATH}: rebuild with python -m eva_jax.tasks.base_model"
    )
  return json.loads(RECORD_PATH.read_text())


def load_params(model, shardings):
  """The shipped base's params, placed in `shardings`; checks they fit `model`."""
  if not PARAMS_PATH.exists():
    raise FileNotFoundError(
      f"no base model at {PARAMS_PATH}: rebuild with python -m eva_jax.tasks.base_model"
    )
  loaded = flax.serialization.msgpack_restore(PARAMS_PATH.read_bytes())
  params_lib._check_structure(loaded, params_lib.abstract_params(model), f"base model {PARAMS_PATH}")
  return jax.device_put(loaded, shardings)


def recipe_with(overrides: list[str]) -> Recipe:
  """`RECIPE` with "field=value" overrides (the CLI's --set)."""
  values = {}
  for item in overrides:
    name, _, value = item.partition("=")
    if name not in {f.name for f in dataclasses.fields(Recipe)}:
      raise ValueError(f"--set: unknown recipe field {name!r}")
    values[name] = type(getattr(RECIPE, name))(value)
  return dataclasses.replace(RECIPE, **values)


def check_shipped(record: dict | None = None, num_samples: int = 6) -> tuple[dict, float]:
  """Re-measures the shipped base's held-out table; returns (table, largest exact-match difference)."""
  record = record or load_record()
  model = architectures.build_model(record["recipe"]["model"])
  mesh = mesh_lib.make_mesh({"data": -1, "fsdp": 1, "tensor": 1})
  params = load_params(model, params_lib.shardings_for(model, mesh))
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
    print(f"largest exact-match difference to the record: {worst:.3f} (tolerance {TABLE_TOLERANCE})")
    return int(worst > TABLE_TOLERANCE)
  recipe = recipe_with(FLAGS.set)
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
    f"wrote {out / PARAMS_PATH.name} ({(out / PARAMS_PATH.name).stat().st_size:,} bytes) and {out / RECORD_PATH.name}"
  )
  return 0


if __name__ == "__main__":
  # Flags are defined here, not at import: eva_jax.config imports this module in every process.
  flags.DEFINE_bool("check", False, "Re-measure the shipped base's held-out table and compare.")
  flags.DEFINE_integer("eval_every", 0, "Print the frontier table every this many steps.")
  flags.DEFINE_string("out", str(ASSETS), "Directory the params and record are written to.")
  flags.DEFINE_multi_string("set", [], "Recipe overrides, e.g. --set=frontier_share=0.1.")
  FLAGS = flags.FLAGS
  sys.exit(app.run(main))
