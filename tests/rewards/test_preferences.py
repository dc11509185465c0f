"""Synthetic preference pairs: the task's reward prefers every chosen response; train and eval prompts are disjoint."""

import numpy as np

from eva_jax.rewards import preferences
from eva_jax.tasks import get_task


def test_corruptions_edit_the_text_as_documented():
  rng = np.random.default_rng(0)
  text = "Reversed sum: 9031"
  assert preferences.CORRUPTIONS["truncate"](text, rng) == "Reversed "  # first half
  assert preferences.CORRUPTIONS["repeat"](text, rng) == f"{text} {text}"
  garbled = preferences.CORRUPTIONS["garble"](text, rng)
  assert garbled[:14] == "Reversed sum: " and garbled[14:].isalpha() and len(garbled) == len(text)
  changed = preferences.CORRUPTIONS["digit"](text, rng)
  assert changed[:14] == "Reversed sum: " and sum(a != b for a, b in zip(changed, text)) == 1


def test_pairs_prefer_the_reference_under_the_task_reward():
  task = get_task("addition")
  train, held_out = preferences.train_and_eval_pairs(task, tuple(preferences.CORRUPTIONS), 200, 60, seed=1)
  assert len(train) == 200 and len(held_out) == 60
  assert not set(train.prompts) & set(held_out.prompts)
  assert set(train.corruption) == set(preferences.CORRUPTIONS)
  for pairs in (train, held_out):
    for prompt, chosen, rejected in zip(pairs.prompts, pairs.chosen, pairs.rejected):
      assert chosen == task.reference(prompt)
      assert task.reward(prompt, chosen) == 1.0 > task.reward(prompt, rejected)
  # Held-out prompts span the eval buckets, harder than the 1-2 digit training prompts.
  assert len({task.difficulty(p) for p in held_out.prompts}) >= 4
  again = preferences.train_and_eval_pairs(task, tuple(preferences.CORRUPTIONS), 200, 60, seed=1)
  assert again == (train, held_out)
