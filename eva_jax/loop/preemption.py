"""SIGTERM (a TPU preemption notice, `kill`, a scheduler's stop) turned into a clean stop at a safe point.

The signal handler only sets a flag; the run polls `check()` at points where stopping loses nothing it
cannot redo: after every training step and between the phases of a round. Online runs save their
train state at the step boundary before stopping; offline runs stop and redo the interrupted round on
resume (every random choice of a round comes from (seed, round), so the redone round is the same).
On several processes the flag is combined across them, so every host stops at the same point even
if only one was signalled.
"""

from collections.abc import Iterator
import contextlib
import signal
import threading

import jax
from jax.experimental import multihost_utils
import numpy as np

EXIT_CODE = 75  # EX_TEMPFAIL: stopped on request with the state saved; rerun the command to resume


class Preempted(Exception):
  """Raised by `Preemption.check` once a stop was requested; `where` says what was saved."""


class Preemption:
  """A stop request set by SIGTERM (or `request()`); `check()` raises `Preempted` once it is set."""

  def __init__(self):
    self._event = threading.Event()

  def request(self, *_) -> None:
    self._event.set()

  def requested(self) -> bool:
    """Whether any process was asked to stop (a collective on several processes: call it on all)."""
    local = self._event.is_set()
    if jax.process_count() == 1:
      return local
    return bool(np.any(multihost_utils.process_allgather(np.array([local]))))

  def check(self, where: str = "") -> None:
    if self.requested():
      raise Preempted(where)

  @contextlib.contextmanager
  def installed(self) -> Iterator["Preemption"]:
    """Handles SIGTERM while the block runs (main thread only; elsewhere the signal keeps its handler)."""
    if threading.current_thread() is not threading.main_thread():
      yield self
      return
    previous = signal.signal(signal.SIGTERM, self.request)
    try:
      yield self
    finally:
      signal.signal(signal.SIGTERM, previous)
