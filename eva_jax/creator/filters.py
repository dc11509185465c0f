"""Filters on new prompts: dedup against the whole pool, empty, bad characters, token length, user hook.

A `PromptFilter` starts from the texts already in the pool and remembers every prompt it accepts,
so duplicates are caught against the pool and within the batch. `check(texts)` returns, for each
text, None (kept) or the reason it was dropped; `counts` tallies the reasons. Filters run in this
order and a prompt is counted under the first one that drops it:

  empty           empty or whitespace-only
  bad_chars       not encodable as UTF-8 (lone surrogates), control characters other than tab and
                  newline, or U+FFFD (the trace of a decoding error)
  too_short       fewer than `min_tokens` tokens (solver tokenizer, no chat template)
  too_long        more than `max_tokens` tokens
  duplicate       exactly the text of a pool prompt or an earlier accepted one
  near_duplicate  equal after `text.normalise_text` (NFKC, case folding, whitespace collapsed)
  user            the configured `user_filter` returned false
"""

import collections
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
import importlib

from eva_jax.creator import config as creator_config
from eva_jax.creator import text as text_lib

REASONS = ("empty", "bad_chars", "too_short", "too_long", "duplicate", "near_duplicate", "user")


def load_user_filter(spec: str) -> Callable[[str], bool] | None:
  """Imports "package.module:function" (None for "")."""
  if not spec:
    return None
  module, _, name = spec.partition(":")
  where = f"config.creator.filters.user_filter {spec!r}"
  if not module or not name:
    raise ValueError(f"{where}: expected 'package.module:function'")
  try:
    imported = importlib.import_module(module)
  except Exception as e:  # ImportError, or whatever the module raises while it is imported
    raise ValueError(f"{where}: cannot import {module}: {type(e).__name__}: {e}") from e
  fn = getattr(imported, name, None)
  if not callable(fn):
    raise ValueError(f"{where}: {module} has no callable {name!r}")
  return _named(fn, where)


def _named(fn: Callable[[str], bool], where: str) -> Callable[[str], bool]:
  """`fn` whose failure on a prompt is a ValueError naming the filter and the prompt."""

  def user_filter(text: str) -> bool:
    try:
      return bool(fn(text))
    except Exception as e:
      raise ValueError(f"{where} raised {type(e).__name__}: {e} on the prompt {text[:200]!r}") from e

  return user_filter


class PromptFilter:
  """Stateful filter over one pool (see module docstring)."""

  def __init__(
    self,
    config: creator_config.FilterConfig,
    existing: Iterable[str] = (),
    count_tokens: Callable[[str], int] | None = None,
    user_filter: Callable[[str], bool] | None = None,
  ):
    if config.needs_tokens and count_tokens is None:
      raise ValueError("token length bounds are set but no count_tokens function was given")
    self.config = config
    self.count_tokens = count_tokens
    self.user_filter = user_filter or load_user_filter(config.user_filter)
    self.counts: collections.Counter[str] = collections.Counter()
    self._exact: set[str] = set()
    self._normalised: set[str] = set()
    for text in existing:
      self._remember(text)

  def _remember(self, text: str) -> None:
    if self.config.dedup_exact:
      self._exact.add(text)
    if self.config.dedup_normalised:
      self._normalised.add(text_lib.normalise_text(text))

  def _reason(self, text: str) -> str | None:
    config = self.config
    if config.drop_empty and not text.strip():
      return "empty"
    if config.drop_bad_chars and text_lib.has_bad_chars(text):
      return "bad_chars"
    if config.needs_tokens:
      tokens = self.count_tokens(text)
      if tokens < config.min_tokens:
        return "too_short"
      if config.max_tokens and tokens > config.max_tokens:
        return "too_long"
    if config.dedup_exact and text in self._exact:
      return "duplicate"
    if config.dedup_normalised and text_lib.normalise_text(text) in self._normalised:
      return "near_duplicate"
    if self.user_filter is not None and not self.user_filter(text):
      return "user"
    return None

  def check(self, texts: Sequence[str]) -> list[str | None]:
    """Per text: None if kept (and remembered), else the reason it was dropped."""
    reasons = []
    for text in texts:
      reason = self._reason(text)
      if reason is None:
        self._remember(text)
      else:
        self.counts[reason] += 1
      reasons.append(reason)
    return reasons

  def keep(self, texts: Sequence[str]) -> list[str]:
    """The texts `check` keeps, in order."""
    return [t for t, r in zip(texts, self.check(texts)) if r is None]
