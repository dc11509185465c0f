"""Filters: each reason, dedup against the whole pool, counts, switches, user hook, real token counts."""

import collections

import pytest

from eva_jax.creator import config as creator_config
from eva_jax.creator import filters
from eva_jax.creator import text as text_lib

ALL_ON = creator_config.FilterConfig(min_tokens=3, max_tokens=40)
POOL = ["What is 12 + 34?", "Add 5 and 6."]


def without_question_marks(text: str) -> bool:
  return "?" not in text


def broken_filter(text: str) -> bool:
  return int(text) > 0  # raises on any prompt that is not a number


def _filter(tokenizer, config=ALL_ON, existing=POOL, **kwargs):
  return filters.PromptFilter(config, existing, lambda t: len(tokenizer.encode(t)), **kwargs)


def test_each_reason_and_counts(tokenizer):
  long_prompt = "Compute " + "+".join(["123"] * 12) + "."
  assert len(tokenizer.encode(long_prompt)) > 40 and len(tokenizer.encode("Hi")) < 3
  candidates = [
    "What is 12 + 34?",  # in the pool
    "what is  12 + 34?",  # case and spacing only
    "ＷＨＡＴ is 12 + 34?",  # full-width letters: equal after NFKC
    "",
    "  \n\t ",
    "Add 1\x00 and 2.",
    "Add 1 and 2 \ufffd.",
    "Add \ud800 and 2.",  # a lone surrogate cannot be written as UTF-8
    "Hi",
    long_prompt,
    "Find the sum of 7 and 8.",  # new: kept
    "Find the sum of 7 and 8.",  # the same again in the batch
    "find the SUM of 7 and 8.",
    "Tab\tand\nnewline are fine: add 1 and 2.",
  ]
  reasons = _filter(tokenizer).check(candidates)
  assert reasons == [
    "duplicate",
    "near_duplicate",
    "near_duplicate",
    "empty",
    "empty",
    "bad_chars",
    "bad_chars",
    "bad_chars",
    "too_short",
    "too_long",
    None,
    "duplicate",
    "near_duplicate",
    None,
  ]


def test_counts_accumulate_and_accepted_prompts_are_remembered(tokenizer):
  prompt_filter = _filter(tokenizer)
  assert prompt_filter.keep(["Add 7 and 9.", "", "Add 5 and 6."]) == ["Add 7 and 9."]
  assert prompt_filter.check(["add 7 and 9.", "Add 7 and 9."]) == ["near_duplicate", "duplicate"]
  assert prompt_filter.counts == collections.Counter(empty=1, duplicate=2, near_duplicate=1)


def test_first_failing_filter_is_the_one_counted(tokenizer):
  prompt_filter = _filter(tokenizer, existing=["Hi"])
  assert prompt_filter.check(["Hi"]) == ["too_short"]  # also a duplicate, but shortness is checked first


def test_user_filter_by_name_and_by_function(tokenizer):
  config = creator_config.FilterConfig(user_filter=f"{__name__}:without_question_marks")
  prompt_filter = filters.PromptFilter(config)
  assert prompt_filter.check(["Is it?", "It is."]) == ["user", None]
  direct = filters.PromptFilter(creator_config.FilterConfig(), user_filter=lambda t: t.startswith("A"))
  assert direct.check(["Add 1 and 2.", "What is 1 + 2?"]) == [None, "user"]
  with pytest.raises(ValueError, match="has no callable 'missing'"):
    filters.load_user_filter(f"{__name__}:missing")


@pytest.mark.parametrize(
  "spec, message",
  [
    (
      "no_such_package.filters:keep",
      r"user_filter 'no_such_package.filters:keep': cannot import no_such_package",
    ),
    (
      "tests.creator.test_filters",
      r"user_filter 'tests.creator.test_filters': expected 'package.module:function'",
    ),
    ("tests.creator.test_filters:missing", r"user_filter .*has no callable 'missing'"),
  ],
)
def test_a_user_filter_that_cannot_be_loaded_is_a_value_error_naming_the_field(spec, message):
  with pytest.raises(ValueError, match=r"^config\.creator\.filters\." + message):
    filters.load_user_filter(spec)


def test_a_user_filter_that_raises_names_itself_and_the_prompt():
  prompt_filter = filters.PromptFilter(creator_config.FilterConfig(user_filter=f"{__name__}:broken_filter"))
  assert prompt_filter.check(["12"]) == [None]
  with pytest.raises(
    ValueError, match=r"user_filter '.*:broken_filter' raised ValueError: .* on the prompt 'What is 1 \+ 2\?'"
  ):
    prompt_filter.check(["What is 1 + 2?"])


def test_everything_off_keeps_everything():
  off = creator_config.FilterConfig(
    dedup_exact=False, dedup_normalised=False, drop_empty=False, drop_bad_chars=False
  )
  texts = ["", "a\x00", "What is 12 + 34?", "What is 12 + 34?"]
  prompt_filter = filters.PromptFilter(off, POOL)
  assert prompt_filter.keep(texts) == texts
  assert not prompt_filter.counts


def test_token_bounds_need_a_counter():
  with pytest.raises(ValueError, match="no count_tokens"):
    filters.PromptFilter(ALL_ON)


@pytest.mark.parametrize(
  "a,b,same",
  [
    ("What is 2+2?", "what is 2+2?", True),
    ("What  is\n2+2?", "What is 2+2?", True),
    ("ﬁnd the sum", "find the sum", True),  # the fi ligature
    ("Straße", "STRASSE", True),  # case folding, not just lower()
    ("2+2", "2-2", False),
    ("What is 2+2?", "What is 2+2", False),
  ],
)
def test_normalise_text(a, b, same):
  assert (text_lib.normalise_text(a) == text_lib.normalise_text(b)) is same
