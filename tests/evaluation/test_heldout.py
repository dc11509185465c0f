"""Held-out evaluation on the tiny model with real sampling and the task reward source."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from eva_jax.evaluation import heldout
from eva_jax.evaluation import task_report
from eva_jax.evaluation.config import EvalConfig
from eva_jax.models import params as params_lib
from eva_jax.rewards import task_source
from eva_jax.sampling import sampler
from eva_jax.tasks import addition

GREEDY = sampler.SamplingConfig(
  num_samples=1, max_new_tokens=12, temperature=0.0, top_p=1.0, max_cache_length=64
)
PER_BUCKET = 4


@pytest.fixture(scope="module")
def prompts(task):
  return task.eval_prompts(PER_BUCKET)


@pytest.fixture(scope="module")
def source(task):
  return task_source.TaskRewardSource(task)


def _evaluate(model, params, tokenizer, prompts, source, sampling=GREEDY, **kwargs):
  return heldout.evaluate(
    model,
    params,
    tokenizer,
    prompts,
    source,
    sampling,
    jax.random.key(0),
    bootstrap=500,
    progress=False,
    **kwargs,
  )


@pytest.fixture(scope="module")
def trained_vs_random(tiny_model, sft_params, tiny_params, tokenizer, prompts, source, task):
  return _evaluate(
    tiny_model, sft_params, tokenizer, prompts, source, reference_params=tiny_params, task=task
  )


def test_policy_against_itself_is_all_ties(tiny_model, sft_params, tokenizer, prompts, source):
  result = _evaluate(tiny_model, sft_params, tokenizer, prompts, source, reference_params=sft_params)
  assert result.reward.value > 0  # the rewards differ between prompts, yet every pair ties
  assert (result.win.wins, result.win.ties, result.win.losses) == (0, len(prompts), 0)
  assert (result.win.win_rate.value, result.win.win_rate.low, result.win.win_rate.high) == (0.5, 0.5, 0.5)
  assert result.win.reward_diff.value == 0.0
  assert result.reference_reward.value == result.reward.value


def test_sampled_self_comparison_ties_through_common_random_numbers(
  tiny_model, sft_params, tokenizer, prompts, source
):
  sampling = dataclasses.replace(GREEDY, num_samples=2, temperature=1.0)
  result = _evaluate(
    tiny_model, sft_params, tokenizer, prompts[::4], source, sampling, reference_params=sft_params
  )
  assert result.policy.rewards.shape == (len(prompts[::4]), 2)
  assert result.win.ties == 2 * len(prompts[::4]) and result.win.win_rate.value == 0.5


def test_trained_policy_beats_the_random_init(trained_vs_random, prompts, task):
  result = trained_vs_random
  policy, reference = result.policy.rewards[:, 0], result.reference.rewards[:, 0]
  assert result.policy.rewards.shape == (len(prompts), 1)
  assert np.all(reference == 0.0)  # the untrained model never writes a well-formed answer
  assert result.win.losses == 0
  assert result.win.wins == int(np.sum(policy > 0)) >= 1
  assert result.win.ties == len(prompts) - result.win.wins
  assert result.win.win_rate.value == pytest.approx((result.win.wins + result.win.ties / 2) / len(prompts))
  assert 0.5 <= result.win.win_rate.low <= result.win.win_rate.value <= result.win.win_rate.high
  assert result.win.reward_diff.value == pytest.approx(policy.mean())
  assert result.reward.value == pytest.approx(policy.mean())
  assert result.reward.low <= result.reward.value <= result.reward.high


def test_task_report_of_the_evaluation(trained_vs_random, prompts, task):
  report = trained_vs_random.task
  texts = trained_vs_random.policy.flat_texts
  assert [b.name for b in report.buckets] == ["+".join(map(str, b)) for b in addition.EVAL_BUCKETS]
  assert all(b.count == PER_BUCKET for b in report.buckets)
  exact = [task_report.is_exact(task, p, t) for p, t in zip(prompts, texts)]
  assert report.overall.exact_match == pytest.approx(np.mean(exact))
  assert report.overall.mean_reward == pytest.approx(trained_vs_random.reward.value)
  assert report.buckets[0].mean_reward == pytest.approx(trained_vs_random.policy.rewards[:PER_BUCKET].mean())


def test_a_binary_training_reward_keeps_the_task_report_graded(
  tiny_model, sft_params, tokenizer, prompts, task
):
  # The quickstart trains on addition_exact; its per-bucket held-out rewards stay the graded task's.
  from eva_jax import tasks

  result = _evaluate(
    tiny_model,
    sft_params,
    tokenizer,
    prompts,
    task_source.TaskRewardSource(tasks.get_task("addition_exact")),
    task=task,
  )
  texts = result.policy.flat_texts
  graded = np.mean([task.reward(p, t) for p, t in zip(prompts, texts)])
  exact = np.mean([task_report.is_exact(task, p, t) for p, t in zip(prompts, texts)])
  assert result.task.overall.mean_reward == pytest.approx(graded)
  assert result.reward.value == pytest.approx(exact)  # the run's own (binary) reward
  assert graded > exact  # partial credit exists on this model's answers


def test_metrics_summary_and_records(trained_vs_random, prompts):
  metrics = trained_vs_random.metrics("eval")
  assert all(isinstance(v, float) for v in metrics.values())
  assert metrics["eval/win_rate"] == trained_vs_random.win.win_rate.value
  assert metrics["eval/reward_diff_ci_high"] == trained_vs_random.win.reward_diff.high
  assert metrics["eval/losses"] == 0.0 and metrics["eval/dropped"] == 0.0
  assert metrics["eval/exact_match/1+1"] == trained_vs_random.task.buckets[0].exact_match
  summary = trained_vs_random.summary()
  assert f"held-out: {len(prompts)} prompts x 1 responses" in summary and "win rate" in summary
  records = trained_vs_random.records()
  assert len(records) == len(prompts) and json.loads(json.dumps(records)) == records
  assert records[3]["reward"] == pytest.approx(trained_vs_random.policy.rewards[3, 0])


def test_cached_reference_responses_swap_roles(
  trained_vs_random, tiny_model, tiny_params, tokenizer, prompts, source
):
  swapped = _evaluate(tiny_model, tiny_params, tokenizer, prompts, source, reference=trained_vs_random.policy)
  assert swapped.policy.texts == trained_vs_random.reference.texts  # same params, same rng
  assert swapped.win.win_rate.value == pytest.approx(1 - trained_vs_random.win.win_rate.value)
  assert (swapped.win.wins, swapped.win.losses) == (trained_vs_random.win.losses, trained_vs_random.win.wins)
  assert swapped.win.reward_diff.value == pytest.approx(-trained_vs_random.win.reward_diff.value)


def test_reference_arguments_are_checked(
  trained_vs_random, tiny_model, sft_params, tokenizer, prompts, source
):
  with pytest.raises(ValueError, match="not both"):
    _evaluate(
      tiny_model,
      sft_params,
      tokenizer,
      prompts,
      source,
      reference_params=sft_params,
      reference=trained_vs_random.policy,
    )
  with pytest.raises(ValueError, match="do not pair"):
    _evaluate(tiny_model, sft_params, tokenizer, prompts[:3], source, reference=trained_vs_random.policy)


def _config(**overrides) -> EvalConfig:
  base = dict(
    every_rounds=1, task="addition", per_bucket=2, prompts_path="", prompts_field="prompt", reference=""
  )
  base |= dict(num_samples=1, temperature=0.0, top_p=1.0, max_new_tokens=8, max_cache_length=64, batch_size=8)
  base |= dict(bootstrap=10, confidence=0.95, tie_tolerance=0.0, seed=0, export=None)
  return EvalConfig(**(base | overrides))


def test_heldout_prompts_from_the_task_or_a_file(tmp_path, task):
  assert heldout.heldout_prompts(_config()) == task.eval_prompts(2)
  assert heldout.heldout_task(_config()) is task and heldout.heldout_task(_config(task="")) is None
  jsonl = tmp_path / "eval.jsonl"
  jsonl.write_text('{"question": "What is 1 + 2?"}\n\n{"question": "Add 5 and 6."}\n')
  assert heldout.heldout_prompts(_config(prompts_path=str(jsonl), prompts_field="question")) == [
    "What is 1 + 2?",
    "Add 5 and 6.",
  ]
  csv = tmp_path / "eval.csv"
  csv.write_text("prompt,id\nWhat is 1 + 2?,a\n")
  assert heldout.heldout_prompts(_config(prompts_path=str(csv))) == ["What is 1 + 2?"]
  jsonl.write_text('{"prompt": "ok"}\n{"prompt": 3}\n')
  with pytest.raises(ValueError, match="line 2"):
    heldout.heldout_prompts(_config(prompts_path=str(jsonl)))


def test_load_reference(tmp_path, tiny_model, sft_params, tiny_params, mesh1):
  shardings = params_lib.shardings_for(tiny_model, mesh1)
  assert heldout.load_reference("", tiny_params, tiny_model, shardings) is None
  assert heldout.load_reference("round0", tiny_params, tiny_model, shardings) is tiny_params
  params_lib.save_params(tmp_path / "ckpt", sft_params)
  restored = heldout.load_reference(str(tmp_path / "ckpt"), tiny_params, tiny_model, shardings)
  jax.tree.map(np.testing.assert_array_equal, restored, sft_params)
  with pytest.raises(FileNotFoundError):
    heldout.load_reference(str(tmp_path / "missing"), tiny_params, tiny_model, shardings)
