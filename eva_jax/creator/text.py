"""Text checks shared by the filters and the evolvers' output parser."""

import unicodedata

_ALLOWED_CONTROL = frozenset("\t\n\r")


def normalise_text(text: str) -> str:
  """The key of near-duplicate detection: NFKC, case-folded, runs of whitespace as one space."""
  return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def has_bad_chars(text: str) -> bool:
  """Not encodable as UTF-8 (lone surrogates), a control character other than tab/newline, or U+FFFD."""
  try:
    text.encode("utf-8")
  except UnicodeEncodeError:
    return True
  return any((unicodedata.category(c) == "Cc" and c not in _ALLOWED_CONTROL) or c == "\ufffd" for c in text)
