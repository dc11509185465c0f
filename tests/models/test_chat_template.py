import pytest

from eva_jax.models import chat_template


def test_format_matches_gemma_template():
  assert chat_template.format_dialog("Hi?", "Hello.") == (
    "<start_of_turn>user\nHi?<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>"
  )


@pytest.mark.parametrize("prompt", ["Add 1 and 2.", "multi\nline {x} <end_of_turn", "  spaced  "])
def test_round_trip(prompt):
  assert chat_template.parse_dialog(chat_template.format_dialog(prompt, "r {y}")) == (prompt, "r {y}")
  assert chat_template.parse_dialog(chat_template.format_prompt(prompt)) == (prompt, "")


def test_unfinished_response_runs_to_end_of_text():
  text = chat_template.format_prompt("p") + "partial answ"
  assert chat_template.parse_dialog(text) == ("p", "partial answ")
  assert chat_template.extract_response("abc<end_of_turn>junk") == "abc"


def test_user_turn_only():
  assert chat_template.parse_dialog("<start_of_turn>user\nq<end_of_turn>") == ("q", None)


def test_non_chat_text_is_rejected():
  with pytest.raises(ValueError, match="not a Gemma chat text"):
    chat_template.parse_dialog("What is 1+1?")
