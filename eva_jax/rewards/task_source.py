"""Task rewards: the programmatic, graded reward of a task in the registry (pure Python, fast)."""

from collections.abc import Sequence
import dataclasses

import numpy as np

from eva_jax.rewards import base
from eva_jax.tasks import Task


@dataclasses.dataclass
class TaskRewardSource:
  """`task.reward(prompt, response)` for every pair; prompts the task cannot parse score 0."""

  task: Task
  batch_size: int = 1024  # pairs between progress-bar updates
  progress: bool | None = None  # None: a bar only when there is more than one batch

  def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    def score_batch(batch_prompts, batch_responses):
      return [self.task.reward(p, r) for p, r in zip(batch_prompts, batch_responses)]

    return base.score_in_batches(
      score_batch,
      prompts,
      responses,
      batch_size=self.batch_size,
      desc=f"{self.task.name} rewards",
      progress=self.progress,
    )

  def close(self) -> None:
    pass
