"""The reward protocol every source implements, and the batching loop the local sources share.

A `RewardSource` turns (prompt, response) texts into one float32 reward per pair. Sources may return
NaN or inf (a remote server's `null`, a diverged model); `nonfinite.apply_policy` decides what happens
to those, so no source hides them.
"""

from collections.abc import Callable
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import tqdm


class RewardSource(Protocol):
  """Scores batches of (prompt, response) pairs. Sources hold resources: call `close()` when done."""

  def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """`[N]` float32 rewards, row i for (prompts[i], responses[i])."""
    ...

  def close(self) -> None: ...


def check_pairs(prompts: Sequence[str], responses: Sequence[str]) -> None:
  """ValueError unless `prompts` and `responses` are equally long sequences of strings."""
  if isinstance(prompts, str) or isinstance(responses, str):
    raise ValueError("prompts and responses must be sequences of strings, not a single string")
  if len(prompts) != len(responses):
    raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
  for name, texts in (("prompt", prompts), ("response", responses)):
    for i, text in enumerate(texts):
      if not isinstance(text, str):
        raise ValueError(f"{name} {i} is a {type(text).__name__}, not a string")


def progress_bar(total: int, batch_size: int, desc: str, progress: bool | None) -> tqdm.tqdm:
  """A pairs bar, shown by default only when the job spans more than one batch."""
  show = total > batch_size if progress is None else progress
  return tqdm.tqdm(total=total, unit="pair", desc=desc, disable=not show)


def score_in_batches(
  score_batch: Callable[[Sequence[str], Sequence[str]], np.ndarray],
  prompts: Sequence[str],
  responses: Sequence[str],
  *,
  batch_size: int,
  desc: str,
  progress: bool | None = None,
) -> np.ndarray:
  """Runs `score_batch` on consecutive chunks of `batch_size` pairs and concatenates the rewards."""
  check_pairs(prompts, responses)
  out = np.zeros(len(prompts), np.float32)
  with progress_bar(len(prompts), batch_size, desc, progress) as bar:
    for begin in range(0, len(prompts), batch_size):
      end = min(begin + batch_size, len(prompts))
      rewards = np.asarray(score_batch(prompts[begin:end], responses[begin:end]), np.float32)
      if rewards.shape != (end - begin,):
        raise ValueError(f"reward batch has shape {rewards.shape}; expected ({end - begin},)")
      out[begin:end] = rewards
      bar.update(end - begin)
  return out
