"""The config-driven entry points on the quickstart config: evaluate, write, export."""

import json

from configs import quickstart
from eva_jax.evaluation import config as eval_config
from eva_jax.evaluation import heldout
from eva_jax.evaluation import job
from eva_jax.rewards import config as reward_config
from eva_jax.rewards import factory


def test_evaluate_write_and_export_from_the_config(
  tmp_path, tiny_model, sft_params, tiny_params, tokenizer, task
):
  config = quickstart.get_config()
  config.task, config.reward.task = "addition", "addition_exact"  # the format sft_params was trained on
  config.eval.per_bucket = 4
  config.eval.max_new_tokens = 12
  config.eval.bootstrap = 50
  instructions = tmp_path / "alpaca_eval.json"
  instructions.write_text(
    json.dumps([{"instruction": "Give a tip for sleep."}, {"instruction": "Name a color."}])
  )
  config.eval.export.alpaca_eval_instructions = str(instructions)
  config.eval.export.max_new_tokens = 12
  cfg = eval_config.parse(config)
  source = factory.make_reward_source(reward_config.parse(config))
  reference = heldout.load_reference(cfg.reference, tiny_params, tiny_model, None)
  assert reference is tiny_params  # "round0"

  result = job.evaluate(
    tiny_model, sft_params, tokenizer, source, cfg, reference_params=reference, progress=False
  )
  assert result.prompts == tuple(task.eval_prompts(4))
  assert result.win.num_pairs == len(result.prompts) and result.win.losses == 0
  assert len(result.task.buckets) == 7

  out = job.write(result, tmp_path / "eval")
  assert json.loads((out / "metrics.json").read_text()) == result.metrics()
  assert (out / "summary.txt").read_text() == result.summary() + "\n"
  assert [json.loads(line) for line in (out / "responses.jsonl").read_text().splitlines()] == result.records()

  done = job.export_benchmarks(tiny_model, sft_params, tokenizer, cfg, tmp_path)
  expected = tmp_path / "benchmarks" / "alpaca_eval" / "eva_jax" / "model_outputs.json"
  assert [(e.benchmark, e.path, e.count) for e in done] == [("alpaca_eval", expected, 2)]
  assert [row["generator"] for row in json.loads(expected.read_text())] == ["eva_jax", "eva_jax"]
