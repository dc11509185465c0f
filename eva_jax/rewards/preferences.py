"""Synthetic preference pairs from a verifiable task, to train a reward model without human labels.

For each prompt the chosen response is the task's reference answer and the rejected one a corrupted
copy of it; the task's own graded reward decides the label, and a pair is kept only when the
reference scores strictly higher. The corruptions are plain text edits, easy to hard:
`truncate` (cut in half), `repeat` (said twice), `garble` (digits turned into letters) and `digit`
(one digit changed: telling it apart needs the arithmetic itself).
"""

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
import string

import numpy as np

from eva_jax.tasks import Task


def _truncate(text: str, rng: np.random.Generator) -> str:
  del rng
  return text[: len(text) // 2]


def _repeat(text: str, rng: np.random.Generator) -> str:
  del rng
  return f"{text} {text}"


def _garble(text: str, rng: np.random.Generator) -> str:
  letters = rng.choice(list(string.ascii_lowercase), size=len(text))
  return "".join(str(letter) if ch.isdigit() else ch for ch, letter in zip(text, letters))


def _digit(text: str, rng: np.random.Generator) -> str:
  where = [i for i, ch in enumerate(text) if ch.isdigit()]
  if not where:
    return text
  i = int(rng.choice(where))
  other = str((int(text[i]) + int(rng.integers(1, 10))) % 10)
  return text[:i] + other + text[i + 1 :]


CORRUPTIONS: dict[str, Callable[[str, np.random.Generator], str]] = {
  "truncate": _truncate,
  "repeat": _repeat,
  "garble": _garble,
  "digit": _digit,
}


@dataclasses.dataclass(frozen=True)
class PreferencePairs:
  """Row i: `chosen[i]` is preferred to `rejected[i]` as a response to `prompts[i]`."""

  prompts: tuple[str, ...]
  chosen: tuple[str, ...]
  rejected: tuple[str, ...]
  corruption: tuple[str, ...]  # the corruption that made each rejected response

  def __len__(self) -> int:
    return len(self.prompts)


def make_pairs(
  task: Task, prompts: Sequence[str], corruptions: Sequence[str], rng: np.random.Generator
) -> PreferencePairs:
  """One pair per prompt whose reference beats its corrupted copy under `task.reward`."""
  rows = []
  for prompt in prompts:
    chosen = task.reference(prompt)
    if chosen is None:
      continue
    name = str(rng.choice(list(corruptions)))
    rejected = CORRUPTIONS[name](chosen, rng)
    if task.reward(prompt, chosen) > task.reward(prompt, rejected):
      rows.append((prompt, chosen, rejected, name))
  if not rows:
    raise ValueError(f"no preference pair could be made from {len(prompts)} prompts of task {task.name!r}")
  return PreferencePairs(*(tuple(column) for column in zip(*rows)))


def train_and_eval_pairs(
  task: Task, corruptions: Sequence[str], train_pairs: int, eval_pairs: int, seed: int
) -> tuple[PreferencePairs, PreferencePairs]:
  """Training pairs on the task's seed prompts; held-out pairs on its eval prompts (disjoint)."""
  rng = np.random.default_rng(seed)
  train_prompts = task.seed_prompts(train_pairs, seed)
  seen = set(train_prompts)
  per_bucket = -(-eval_pairs // 4)  # eval buckets hold several difficulties; draw extra, then subsample
  held_out = [p for p in task.eval_prompts(per_bucket) if p not in seen]
  held_out = [held_out[i] for i in rng.permutation(len(held_out))[:eval_pairs]]
  return make_pairs(task, train_prompts, corruptions, rng), make_pairs(task, held_out, corruptions, rng)
