"""Multi-turn prompts through the single-turn sampler, and turn-by-turn answering."""

import pytest

from eva_jax.evaluation import generation
from eva_jax.models import batching
from eva_jax.models import chat_template

GEMMA_TWO_TURNS = (
  "<start_of_turn>user\nAdd 3 and 4.<end_of_turn>\n<start_of_turn>model\nReversed sum: 7<end_of_turn>\n"
  "<start_of_turn>user\nNow add 5 more.<end_of_turn>\n<start_of_turn>model\n"
)


def test_conversation_text_is_gemmas_multi_turn_template():
  history = [("Add 3 and 4.", "Reversed sum: 7")]
  assert generation.conversation_text(history, "Now add 5 more.") == GEMMA_TWO_TURNS
  prompt = generation.sampler_prompt(history, "Now add 5 more.")
  assert chat_template.prompt_text(prompt) == GEMMA_TWO_TURNS
  assert generation.sampler_prompt([], "Add 3 and 4.") == "Add 3 and 4."


def test_sampler_encoding_of_a_later_turn_equals_the_encoded_conversation(tokenizer):
  history = [("Add 3 and 4.", "Reversed sum: 7"), ("Now add 5 more.", "Reversed sum: 21")]
  ids = batching.encode_prompts(tokenizer, [generation.sampler_prompt(history, "And 10?")])[0]
  assert ids == tokenizer.encode(generation.conversation_text(history, "And 10?"), add_bos=True)
  special = tokenizer.special_tokens
  assert ids.count(special.START_OF_TURN) == 6  # three user and three model turns
  assert ids.count(special.END_OF_TURN) == 5  # every turn but the open model turn is closed


def test_turns_are_answered_in_order_with_earlier_answers_in_context(echo):
  conversations = [["a1", "a2"], ["b1"], ["c1", "c2", "c3"]]
  answers = generation.answer_conversations(echo, conversations, [0.7, None, 0.7])
  assert [(key, temp) for key, temp, _ in echo.calls] == [(0, 0.7), (1, None), (2, 0.7), (4, 0.7)]
  assert echo.calls[0][2] == ["a1", "c1"] and echo.calls[1][2] == ["b1"]
  assert echo.calls[2][2] == [
    generation.sampler_prompt([("a1", "answer 0.0")], "a2"),
    generation.sampler_prompt([("c1", "answer 0.1")], "c2"),
  ]
  assert echo.calls[3][2] == [generation.sampler_prompt([("c1", "answer 0.1"), ("c2", "answer 2.1")], "c3")]
  assert answers == [["answer 0.0", "answer 2.0"], ["answer 1.0"], ["answer 0.1", "answer 2.1", "answer 4.0"]]


def test_temperatures_must_match_conversations(echo):
  with pytest.raises(ValueError, match="2 temperatures for 1 conversations"):
    generation.answer_conversations(echo, [["x"]], [0.0, 0.1])
