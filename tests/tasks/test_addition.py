"""The embedded task: phrasing round trips, graded reward, evolution operators, registry."""

import numpy as np
import pytest

from eva_jax import tasks
from eva_jax.tasks import addition


@pytest.mark.parametrize("template", range(len(addition.PROMPT_TEMPLATES)))
@pytest.mark.parametrize("operands", [(3, 45), (120, 7, 999), (0, 0, 1, 12345678)])
def test_prompt_parses_back(template, operands):
  problem = addition.Problem(operands, template)
  assert addition.parse_prompt(problem.prompt) == problem


def test_two_operand_phrasing_is_the_classic_one():
  # The embedded tokenizer was trained on these strings; they must not drift.
  assert addition.Problem((560, 34), 2).prompt == "Compute 560+34."
  assert addition.Problem((5, 17), 4).prompt == "I have 5 coins and find 17 more. How many coins do I have?"
  assert addition.Problem((12, 34, 5), 1).prompt == "Add 12, 34 and 5."


@pytest.mark.parametrize(
  "text", ["", "What is 3?", "What is 3 + x?", "Compute 1+2. Then 3.", "What is {plus}?"]
)
def test_non_task_prompts_do_not_parse(text):
  assert addition.parse_prompt(text) is None
  assert addition.reward(text, "Reversed sum: 3") == 0.0


def test_graded_reward():
  p = addition.Problem((57, 68))  # 125 -> "521"
  assert p.answer == "Reversed sum: 521"
  assert addition.grade(p, "Reversed sum: 521") == 1.0
  assert addition.grade(p, "  Reversed sum: 521 \n") == 1.0
  assert addition.grade(p, "Reversed sum: 421") == pytest.approx(0.8 * 2 / 3)
  assert addition.grade(p, "Reversed sum: 5210") == pytest.approx(0.8 * 3 / 4)
  assert addition.grade(p, "Reversed sum: 52") == pytest.approx(0.8 * 2 / 3)
  assert addition.grade(p, "Reversed sum: 999") == 0.0
  for malformed in ["521", "Reversed sum: ", "Reversed sum: 5x1", "Reversed sum: ５２１", "sum: 521"]:
    assert addition.grade(p, malformed) == 0.0


def test_evolution_operators_change_difficulty_as_named():
  rng = np.random.default_rng(0)
  p = addition.Problem((57, 8), 3)
  assert addition.evolve(p, "add_digit", rng).difficulty in ("3+1", "2+2")
  assert addition.evolve(p, "add_operand", rng).difficulty == "2+1+1"
  assert addition.evolve(p, "remove_digit", rng).difficulty == "1+1"
  same = addition.evolve(p, "resample", rng)
  assert same.difficulty == p.difficulty and same.template == p.template
  other = addition.evolve(p, "rephrase", rng)
  assert other.operands == p.operands and other.template != p.template
  assert addition.evolve(addition.Problem((1, 2)), "remove_digit", rng) is None
  assert addition.evolve(addition.Problem((1,) * addition.MAX_OPERANDS), "add_operand", rng) is None
  with pytest.raises(ValueError, match="unknown addition evolution method 'deepen'"):
    addition.evolve(p, "deepen", rng)


def test_registry_task_works_on_text():
  task = tasks.get_task("addition")
  seeds = task.seed_prompts(50, 0)
  assert len(set(seeds)) == 50 and seeds == task.seed_prompts(50, 0)
  assert all(task.difficulty(s) in ("1+1", "2+1", "2+2") for s in seeds)
  for s in seeds[:5]:
    assert task.reward(s, task.reference(s)) == 1.0
  child = task.evolve(seeds[0], "add_operand", np.random.default_rng(1))
  assert task.difficulty(child).count("+") == 2
  assert task.evolve("not a sum", "add_digit", np.random.default_rng(1)) is None
  held_out = task.eval_prompts(3)
  assert len(held_out) == 3 * len(addition.EVAL_BUCKETS)
  assert {task.difficulty(p) for p in held_out} == {"+".join(map(str, b)) for b in addition.EVAL_BUCKETS}
  with pytest.raises(ValueError, match="unknown task 'chess'"):
    tasks.get_task("chess")


def test_exact_task_rewards_only_the_exact_answer():
  exact = tasks.get_task("addition_exact")
  graded = tasks.get_task("addition")
  prompt = addition.Problem((123, 45), 2).prompt
  assert exact.reward(prompt, "Reversed sum: 861") == graded.reward(prompt, "Reversed sum: 861") == 1.0
  assert graded.reward(prompt, "Reversed sum: 862") > 0 and exact.reward(prompt, "Reversed sum: 862") == 0.0
  assert exact.frontier_bucket == graded.frontier_bucket == "3+2"
  assert exact.eval_prompts(2) == graded.eval_prompts(2)
  assert exact.evolve(prompt, "rephrase", np.random.default_rng(3)) == graded.evolve(
    prompt, "rephrase", np.random.default_rng(3)
  )


def test_reversed_operands_are_written_and_read_least_significant_digit_first():
  lsb = tasks.get_task("addition_lsb")
  problem = addition.Problem((120, 45), 0, reversed_operands=True)
  assert problem.prompt == "What is 021 + 54?" and problem.answer == "Reversed sum: 561"  # 165
  assert addition.parse_prompt(problem.prompt, reversed_operands=True) == problem
  assert lsb.reference(problem.prompt) == "Reversed sum: 561" and lsb.difficulty(problem.prompt) == "3+2"
  assert lsb.reward(problem.prompt, "Reversed sum: 561") == 1.0
  assert tasks.get_task("addition").reward(problem.prompt, "Reversed sum: 561") < 1.0  # 21 + 54 = 75
  assert tasks.get_task("addition_lsb_exact").reward(problem.prompt, "Reversed sum: 562") == 0.0
  # Evolution keeps the format; the seeds and held-out sets are the same sums, written reversed.
  rng = np.random.default_rng(0)
  for method in addition.METHODS:
    child = lsb.evolve(problem.prompt, method, rng)
    assert child is None or addition.parse_prompt(child, reversed_operands=True).reversed_operands
  plain, reversed_ = tasks.get_task("addition").eval_prompts(2), lsb.eval_prompts(2)
  assert [addition.parse_prompt(p).operands for p in plain] == [
    addition.parse_prompt(p, reversed_operands=True).operands for p in reversed_
  ]
  assert lsb.seed_prompts(5, 0) != tasks.get_task("addition").seed_prompts(5, 0)
