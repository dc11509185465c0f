"""The non-finite guard: consecutive skipped steps stop a phase, naming the steps and the last finite loss."""

import pytest

from eva_jax.solver import nonfinite


def _step(loss, skipped):
  return {"loss": loss, "skipped_nonfinite": float(skipped)}


def test_the_limit_of_consecutive_skipped_steps_stops_with_the_last_finite_loss():
  guard = nonfinite.NonfiniteGuard(limit=3, phase="round 2: dpo epochs")
  guard.check(0, _step(0.69, False))
  guard.check(1, _step(0.5, False))
  guard.check(2, _step(float("nan"), True))
  guard.check(3, _step(float("nan"), True))
  with pytest.raises(nonfinite.NonfiniteTraining) as error:
    guard.check(4, _step(float("inf"), True))
  message = str(error.value)
  assert message.startswith("round 2: dpo epochs: 3 consecutive optimizer steps")
  assert "steps 2-4" in message and "the last finite loss was 0.5 at step 1" in message
  assert "max_nonfinite_steps" in message and "\n" not in message
  assert isinstance(error.value, ValueError)  # main.py prints it as one line


def test_a_finite_step_resets_the_count():
  guard = nonfinite.NonfiniteGuard(limit=2, phase="p")
  for step in range(10):  # every other step skipped: never 2 in a row
    guard.check(step, _step(float("nan") if step % 2 else 1.0, step % 2))
  assert guard.consecutive == 1 and guard.last_finite == (8, 1.0)


def test_a_phase_that_never_had_a_finite_step_says_so():
  guard = nonfinite.NonfiniteGuard(limit=1, phase="warm start (SFT)")
  with pytest.raises(nonfinite.NonfiniteTraining, match="no step of this phase was finite"):
    guard.check(0, _step(float("nan"), True))
