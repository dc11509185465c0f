"""The embedded quickstart task: integer sums with the answer written least-significant digit first.

Writing the sum backwards lets a small left-to-right model carry digits the way a person does, so a
tiny Gemma-architecture model learns short sums quickly and has graded, partial success just beyond
them: the frontier the creator needs. With `reversed_operands` the operands are written least-
significant digit first too ("What is 21 + 5?" asks 12 + 5): answer digit i then sits at the same
offset from the start of every operand, whatever their lengths, so what a model learns about short
sums carries over to longer ones (Lee et al., ICML 2025; Zhou et al. 2023). The quickstart's task
`addition_lsb` uses it; `addition` keeps the operands as people write them. Difficulty grows with operand digits and operand count (the
in-depth axis); phrasings and fresh operands of the same sizes give different prompts of the same
difficulty (the in-breadth axis). This module owns the task's text format (the tokenizer is
trained on `corpus()`), its graded reward and its evolution operators.
"""

from collections.abc import Iterator
import dataclasses
import re

import numpy as np

# Phrasings of one problem (our own templates, never user text, so `str.format` is safe here).
# Placeholders: {plus} "12 + 34 + 5", {compact} "12+34+5", {words} "12, 34 and 5", {plus_words}
# "12 plus 34 plus 5", {first} "12", {rest} "34 and 5". Two operands read as the classic phrasings.
PROMPT_TEMPLATES = (
  "What is {plus}?",
  "Add {words}.",
  "Compute {compact}.",
  "Find the sum of {words}.",
  "I have {first} coins and find {rest} more. How many coins do I have?",
  "A train carries {first} people and {rest} board. How many are on the train?",
  "Calculate the total: {plus_words}.",
  "A farmer has {first} sheep and buys {rest} more. How many sheep now?",
)

RESPONSE_PREFIX = "Reversed sum: "
MAX_OPERANDS = 4  # evolution never builds more operands than this
MAX_DIGITS = 8  # ... nor operands longer than this
SEED_MAX_DIGITS = 2  # seed prompts have two operands of at most this many digits
PARTIAL_CREDIT = 0.8  # reward of a well-formed answer with every digit wrong-placed is 0; all right is 1

# Methods of `evolve`: in-depth ones change difficulty, in-breadth ones keep it.
IN_DEPTH = ("add_digit", "add_operand", "remove_digit")
IN_BREADTH = ("rephrase", "resample")
METHODS = IN_DEPTH + IN_BREADTH


@dataclasses.dataclass(frozen=True)
class Problem:
  """One sum: its operands and the phrasing used to ask it."""

  operands: tuple[int, ...]
  template: int = 0
  reversed_operands: bool = False  # operands written least-significant digit first in the prompt

  def __post_init__(self):
    if len(self.operands) < 2 or any(x < 0 for x in self.operands):
      raise ValueError(f"a problem needs at least two non-negative operands, got {self.operands}")

  @property
  def prompt(self) -> str:
    ops = [str(x)[::-1] if self.reversed_operands else str(x) for x in self.operands]
    rest = " and ".join(ops[1:])
    return PROMPT_TEMPLATES[self.template].format(
      plus=" + ".join(ops),
      compact="+".join(ops),
      words=", ".join(ops[:-1]) + " and " + ops[-1],
      plus_words=" plus ".join(ops),
      first=ops[0],
      rest=rest,
    )

  @property
  def answer(self) -> str:
    """The reference response: the sum's digits, least significant first."""
    return RESPONSE_PREFIX + str(sum(self.operands))[::-1]

  @property
  def difficulty(self) -> str:
    """Operand digit counts, largest first: "3+2", "2+2+1"."""
    return "+".join(str(d) for d in sorted((len(str(x)) for x in self.operands), reverse=True))


def _template_pattern(template: str) -> re.Pattern:
  groups = {
    "plus": r"(?P<plus>\d+(?: \+ \d+)+)",
    "compact": r"(?P<compact>\d+(?:\+\d+)+)",
    "words": r"(?P<words>\d+(?:, \d+)* and \d+)",
    "plus_words": r"(?P<plus_words>\d+(?: plus \d+)+)",
    "first": r"(?P<first>\d+)",
    "rest": r"(?P<rest>\d+(?: and \d+)*)",
  }
  parts = re.split(r"\{(\w+)\}", template)
  regex = "".join(groups[p] if i % 2 else re.escape(p) for i, p in enumerate(parts))
  return re.compile(regex)


_PATTERNS = tuple(_template_pattern(t) for t in PROMPT_TEMPLATES)


def parse_prompt(text: str, reversed_operands: bool = False) -> Problem | None:
  """The problem a prompt asks, or None if it is not one of the task's phrasings."""
  for index, pattern in enumerate(_PATTERNS):
    match = pattern.fullmatch(text.strip())
    if match:
      written = re.findall(r"\d+", " ".join(g for g in match.groups() if g))
      numbers = [int(x[::-1] if reversed_operands else x) for x in written]
      try:
        return Problem(tuple(numbers), index, reversed_operands)
      except ValueError:
        return None
  return None


def grade(problem: Problem, response: str) -> float:
  """Graded reward in [0, 1]: 1 for the exact answer, partial credit for digits in place, 0 if malformed.

  A well-formed answer is `RESPONSE_PREFIX` followed by digits; its credit is `PARTIAL_CREDIT` times
  the fraction of the reference's digit positions it gets right (extra or missing digits count as
  wrong positions), so a nearly right long sum earns more than a wrong one.
  """
  text = response.strip()
  if not text.startswith(RESPONSE_PREFIX):
    return 0.0
  digits = text[len(RESPONSE_PREFIX) :].strip()
  if not digits.isdigit() or not digits.isascii():
    return 0.0
  reference = problem.answer[len(RESPONSE_PREFIX) :]
  if digits == reference:
    return 1.0
  right = sum(a == b for a, b in zip(digits, reference))
  return PARTIAL_CREDIT * right / max(len(digits), len(reference))


def reward(prompt: str, response: str, reversed_operands: bool = False) -> float:
  """`grade` of a response to a prompt in the task's format; 0 for prompts the task cannot parse."""
  problem = parse_prompt(prompt, reversed_operands)
  return 0.0 if problem is None else grade(problem, response)


def random_operand(rng: np.random.Generator, digits: int) -> int:
  return int(rng.integers(10 ** (digits - 1) if digits > 1 else 0, 10**digits))


def random_problem(
  rng: np.random.Generator, max_digits: int = 3, num_operands: int = 2, reversed_operands: bool = False
) -> Problem:
  """A problem with operands of 1..max_digits digits each and a random phrasing."""
  digits = rng.integers(1, max_digits + 1, size=num_operands)
  operands = tuple(random_operand(rng, int(d)) for d in digits)
  return Problem(operands, int(rng.integers(len(PROMPT_TEMPLATES))), reversed_operands)


def evolve(problem: Problem, method: str, rng: np.random.Generator) -> Problem | None:
  """A child of `problem` made by `method` (one of METHODS); None when the method cannot apply.

  In depth: `add_digit` lengthens one operand by a digit, `add_operand` appends an operand as long
  as the shortest one, `remove_digit` shortens the longest operand (the easier step that keeps a pool
  near the solver's frontier). In breadth: `rephrase` asks the same sum another way, `resample` draws
  new operands with the same digit counts.
  """
  ops = list(problem.operands)
  sizes = [len(str(x)) for x in ops]
  if method == "add_digit":
    candidates = [i for i, s in enumerate(sizes) if s < MAX_DIGITS]
    if not candidates:
      return None
    i = int(rng.choice(candidates))
    ops[i] = random_operand(rng, sizes[i] + 1)
  elif method == "add_operand":
    if len(ops) >= MAX_OPERANDS:
      return None
    ops.append(random_operand(rng, min(sizes)))
  elif method == "remove_digit":
    i = int(np.argmax(sizes))
    if sizes[i] == 1:
      return None
    ops[i] = random_operand(rng, sizes[i] - 1)
  elif method == "rephrase":
    others = [t for t in range(len(PROMPT_TEMPLATES)) if t != problem.template]
    return dataclasses.replace(problem, template=int(rng.choice(others)))
  elif method == "resample":
    ops = [random_operand(rng, s) for s in sizes]
  else:
    raise ValueError(f"unknown addition evolution method {method!r}; expected one of {METHODS}")
  return dataclasses.replace(problem, operands=tuple(ops))


def seed_problems(
  num: int, seed: int, max_digits: int = SEED_MAX_DIGITS, reversed_operands: bool = False
) -> list[Problem]:
  """Easy, distinct two-operand problems for a seed pool (deterministic for `seed`)."""
  rng = np.random.default_rng(seed)
  seen, out = set(), []
  for _ in range(100 * num):
    problem = random_problem(rng, max_digits, reversed_operands=reversed_operands)
    if problem.prompt not in seen:
      seen.add(problem.prompt)
      out.append(problem)
      if len(out) == num:
        return out
  raise ValueError(f"cannot draw {num} distinct problems of at most {max_digits} digits")


# Held-out buckets from the seeds' difficulty to well beyond it: digit counts per operand.
EVAL_BUCKETS = ((1, 1), (2, 2), (3, 2), (3, 3), (4, 4), (2, 2, 2), (3, 3, 3))
EASY_BUCKETS = ("1+1", "2+2")  # the held-out buckets at the seeds' difficulty
FRONTIER_BUCKET = "3+2"  # the first one beyond: one operand a digit longer


def eval_problems(per_bucket: int, seed: int = 12345, reversed_operands: bool = False) -> list[Problem]:
  """A fixed held-out set: `per_bucket` problems for each of EVAL_BUCKETS (exact digit counts)."""
  rng = np.random.default_rng(seed)
  out = []
  for bucket in EVAL_BUCKETS:
    for _ in range(per_bucket):
      operands = tuple(random_operand(rng, d) for d in bucket)
      out.append(Problem(operands, int(rng.integers(len(PROMPT_TEMPLATES))), reversed_operands))
  return out


def corpus(num_problems: int = 2000, seed: int = 0) -> Iterator[str]:
  """Deterministic text lines (prompts and answers) to train the embedded tokenizer on.

  Operands as people write them (the shipped tokenizer was trained on these lines); reversed
  operands use the same characters, and digits are single tokens, so the vocabulary covers both.
  """
  rng = np.random.default_rng(seed)
  for _ in range(num_problems):
    problem = random_problem(rng, max_digits=6)
    yield problem.prompt
    yield problem.answer
