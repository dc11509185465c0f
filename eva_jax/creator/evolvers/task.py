"""The task evolver: a verifiable task's own operators (in depth: harder; in breadth: different, as hard).

For programmatic domains the "rewriting model" is the task itself: `Task.evolve(prompt, method,
rng)` returns a child prompt or None when the method cannot apply (e.g. no digit left to remove);
those are counted as `not_applicable`, prompts the task cannot read as `not_task_prompt`.
"""

from collections.abc import Sequence

import numpy as np

from eva_jax import tasks
from eva_jax.creator.evolvers import chains
from eva_jax.creator.evolvers import protocol


def task_methods(task: tasks.Task) -> tuple[str, ...]:
  return task.in_depth_methods + task.in_breadth_methods


def task_rewrite(task: tasks.Task) -> protocol.RewriteStep:
  def rewrite(requests: Sequence[protocol.Request], rng: np.random.Generator) -> list[protocol.Rewrite]:
    out = []
    for request in requests:
      if task.difficulty(request.text) is None:
        out.append(protocol.Rewrite(None, "not_task_prompt"))
        continue
      child = task.evolve(request.text, request.method, rng)
      out.append(protocol.Rewrite(child, "" if child is not None else "not_applicable"))
    return out

  return rewrite


def task_evolver(
  task: tasks.Task, methods: protocol.MethodDistribution, num_evolutions: int = 4
) -> chains.ChainEvolver:
  unknown = set(methods.names) - set(task_methods(task))
  if unknown:
    raise ValueError(f"task {task.name!r} has no evolution methods {sorted(unknown)}")
  return chains.ChainEvolver(task_rewrite(task), methods, num_evolutions)
