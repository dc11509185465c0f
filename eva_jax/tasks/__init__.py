"""Embedded verifiable tasks: the registry the reward, creator and loop code look tasks up in.

A `Task` bundles what the rest of eva needs from a programmatic domain, all on prompt text (the
pool stores text): a graded reward, the reference answer (for SFT warm starts and exact match), a
difficulty label (for per-bucket reports), evolution operators (for the task evolver), and seed and
held-out prompt sets. Look one up with `get_task(name)`.
"""

from collections.abc import Callable
import dataclasses

import numpy as np

from eva_jax.tasks import addition


@dataclasses.dataclass(frozen=True)
class Task:
  """A verifiable domain. Every function takes prompt text; None means "not a prompt of this task"."""

  name: str
  reward: Callable[[str, str], float]  # (prompt, response) -> graded reward in [0, 1]
  reference: Callable[[str], str | None]  # prompt -> the exact reference response
  difficulty: Callable[[str], str | None]  # prompt -> bucket label, e.g. "3+2"
  evolve: Callable[[str, str, np.random.Generator], str | None]  # (prompt, method, rng) -> child
  in_depth_methods: tuple[str, ...]  # evolve methods that change difficulty
  in_breadth_methods: tuple[str, ...]  # evolve methods that keep it
  seed_prompts: Callable[[int, int], list[str]]  # (num, seed) -> easy, distinct prompts
  eval_prompts: Callable[[int], list[str]]  # per_bucket -> fixed held-out prompts, easy to hard
  easy_buckets: tuple[str, ...] = ()  # held-out buckets at or below the seeds' difficulty
  frontier_bucket: str = ""  # the first held-out bucket beyond the seeds' difficulty


def addition_task(name: str, *, reversed_operands: bool = False, exact: bool = False) -> Task:
  """The embedded sums in one prompt format; `exact`: binary reward (1 exact, else 0).

  As the training reward, the binary one makes the creator's regret proxy separate the learnable
  frontier (some of n samples right: gap 1) from prompts out of reach (all wrong: gap 0), which
  graded partial credit blurs; held-out reports can stay graded.
  """
  parse = lambda prompt: addition.parse_prompt(prompt, reversed_operands)  # noqa: E731

  def lift(fn: Callable[[addition.Problem], object]) -> Callable[[str], object]:
    def on_text(prompt: str):
      problem = parse(prompt)
      return None if problem is None else fn(problem)

    return on_text

  def evolve(prompt: str, method: str, rng: np.random.Generator) -> str | None:
    if method not in addition.METHODS:
      raise ValueError(f"unknown addition evolution method {method!r}; expected one of {addition.METHODS}")
    problem = parse(prompt)
    child = None if problem is None else addition.evolve(problem, method, rng)
    return None if child is None else child.prompt

  def graded(prompt: str, response: str) -> float:
    return addition.reward(prompt, response, reversed_operands)

  return Task(
    name=name,
    reward=(lambda prompt, response: float(graded(prompt, response) == 1.0)) if exact else graded,
    reference=lift(lambda p: p.answer),
    difficulty=lift(lambda p: p.difficulty),
    evolve=evolve,
    in_depth_methods=addition.IN_DEPTH,
    in_breadth_methods=addition.IN_BREADTH,
    seed_prompts=lambda num, seed: [
      p.prompt for p in addition.seed_problems(num, seed, reversed_operands=reversed_operands)
    ],
    eval_prompts=lambda per_bucket: [
      p.prompt for p in addition.eval_problems(per_bucket, reversed_operands=reversed_operands)
    ],
    easy_buckets=addition.EASY_BUCKETS,
    frontier_bucket=addition.FRONTIER_BUCKET,
  )


ADDITION = addition_task("addition")
ADDITION_EXACT = addition_task("addition_exact", exact=True)
# Operands written least-significant digit first, like the answer (the quickstart's format).
ADDITION_LSB = addition_task("addition_lsb", reversed_operands=True)
ADDITION_LSB_EXACT = addition_task("addition_lsb_exact", reversed_operands=True, exact=True)

TASKS = {task.name: task for task in (ADDITION, ADDITION_EXACT, ADDITION_LSB, ADDITION_LSB_EXACT)}


def get_task(name: str) -> Task:
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
  return TASKS[name]
