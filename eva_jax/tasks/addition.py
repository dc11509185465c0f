"""The embedded quickstart task: integer addition with the sum written least-significant digit first.

Writing the sum backwards lets a small left-to-right model carry digits the way a person does, so a
tiny Gemma-architecture model learns short sums quickly and has graded, partial success just beyond
them: the frontier the creator needs. Prompts come in several phrasings (the in-breadth axis) and
operand sizes (the in-depth axis). This module owns the task's text format; the tokenizer is trained
on `corpus()`.
"""

from collections.abc import Iterator
import dataclasses

import numpy as np

# Phrasings of one addition problem; `{a}` and `{b}` are the operands (our own templates, never
# user text, so `str.format` is safe here).
PROMPT_TEMPLATES = (
  "What is {a} + {b}?",
  "Add {a} and {b}.",
  "Compute {a}+{b}.",
  "Find the sum of {a} and {b}.",
  "I have {a} coins and find {b} more. How many coins do I have?",
  "A train carries {a} people and {b} board. How many are on the train?",
  "Calculate the total: {a} plus {b}.",
  "A farmer has {a} sheep and buys {b} more. How many sheep now?",
)

RESPONSE_PREFIX = "Reversed sum: "


@dataclasses.dataclass(frozen=True)
class Problem:
  """One addition problem: operands and the phrasing used to ask it."""

  a: int
  b: int
  template: int = 0

  @property
  def prompt(self) -> str:
    return PROMPT_TEMPLATES[self.template].format(a=self.a, b=self.b)

  @property
  def answer(self) -> str:
    """The reference response: the sum's digits, least significant first."""
    return RESPONSE_PREFIX + str(self.a + self.b)[::-1]


def random_problem(rng: np.random.Generator, max_digits: int = 3) -> Problem:
  """A problem with operands of 1..max_digits digits each and a random phrasing."""
  digits_a, digits_b = rng.integers(1, max_digits + 1, size=2)
  a = int(rng.integers(10 ** (digits_a - 1) if digits_a > 1 else 0, 10**digits_a))
  b = int(rng.integers(10 ** (digits_b - 1) if digits_b > 1 else 0, 10**digits_b))
  return Problem(a, b, int(rng.integers(len(PROMPT_TEMPLATES))))


def corpus(num_problems: int = 2000, seed: int = 0) -> Iterator[str]:
  """Deterministic text lines (prompts and answers) to train the embedded tokenizer on."""
  rng = np.random.default_rng(seed)
  for _ in range(num_problems):
    problem = random_problem(rng, max_digits=6)
    yield problem.prompt
    yield problem.answer
