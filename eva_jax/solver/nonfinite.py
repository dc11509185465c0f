"""Stop a phase whose optimizer steps keep coming out non-finite.

A step whose loss or gradient is NaN/inf leaves the params and moments as they were (optim's
`apply_if_finite`, `skipped_nonfinite` in the step's metrics): one such step is noise, but a run
of them means the model has diverged and every later step is skipped too, so the run would train
on as if nothing happened. `NonfiniteGuard` counts consecutive skipped steps and, at
`solver.max_nonfinite_steps`, raises `NonfiniteTraining` naming the phase, the steps and the last
finite loss. It is raised inside the phase, before the loop checkpoints anything, so the newest
checkpoint stays the one before the phase (nanodo and big_vision stop the same way).
"""

from collections.abc import Mapping
import dataclasses
import math


class NonfiniteTraining(ValueError):
  """Too many consecutive non-finite optimizer steps: the run stops (a ValueError: one line for the user)."""


@dataclasses.dataclass
class NonfiniteGuard:
  limit: int  # consecutive skipped steps that stop the phase
  phase: str  # what is training, for the message (e.g. "dpo epochs of round 3")
  consecutive: int = 0
  last_finite: tuple[int, float] | None = None  # (step, loss) of the last step that was applied

  def check(self, step: int, metrics: Mapping[str, float]) -> None:
    """Counts step `step` (metrics with `skipped_nonfinite` and `loss`); raises at the limit."""
    if float(metrics.get("skipped_nonfinite", 0.0)) == 0.0:
      self.consecutive, self.last_finite = 0, (step, float(metrics["loss"]))
      return
    self.consecutive += 1
    if self.consecutive < self.limit:
      return
    first = step - self.consecutive + 1
    last = (
      f"the last finite loss was {self.last_finite[1]:.6g} at step {self.last_finite[0]}"
      if self.last_finite is not None
      else "no step of this phase was finite"
    )
    loss = float(metrics.get("loss", math.nan))
    raise NonfiniteTraining(
      f"{self.phase}: {self.consecutive} consecutive optimizer steps had a non-finite loss or "
      f"gradient (steps {first}-{step}, loss {loss}); {last}. Stopped before anything was "
      "checkpointed (the newest checkpoint is the one before); lower the learning rate or check "
      "the data, or raise config.solver.max_nonfinite_steps"
    )
