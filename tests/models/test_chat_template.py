import io

import dialog
import pytest
import sentencepiece as spm

from eva_jax.models import batching
from eva_jax.models import chat_template
from eva_jax.models import tokenizer as tokenizer_lib


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


@pytest.mark.parametrize(
  "template,fmt", [(chat_template.GEMMA, dialog.Format.GEMMA3), (chat_template.GEMMA4, dialog.Format.GEMMA4)]
)
def test_turns_render_as_the_gemma_library_renders_them(template, fmt):
  history = (("Q1 <b>", "A1"), ("Q2", "A2\nmore"))
  turns = [t for q, a in history for t in (dialog.User(q), dialog.Model(a))]
  conversation = chat_template.Conversation(history, "Q3?")
  assert chat_template.prompt_text(conversation, template) == dialog.Conversation(
    *turns, dialog.User("Q3?")
  ).as_text(format=fmt)
  assert chat_template.format_prompt("Q", template) == dialog.Conversation(dialog.User("Q")).as_text(
    format=fmt
  )
  assert chat_template.parse_dialog(chat_template.format_dialog("p", "r", template), template) == ("p", "r")


@pytest.fixture(scope="module")
def gemma4_style_tokenizer(tmp_path_factory):
  """A real sentencepiece model with Gemma 4's turn markers, behind gemma's Gemma4Tokenizer class."""
  corpus = [
    chat_template.format_dialog(f"What is {i} + {i + 1}?", str(2 * i + 1), chat_template.GEMMA4)
    for i in range(200)
  ]
  path = tmp_path_factory.mktemp("g4tok") / "tokenizer.model"
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
    sentence_iterator=iter(corpus),
    model_writer=model,
    vocab_size=400,
    pad_id=0,
    eos_id=1,
    bos_id=2,
    unk_id=3,
    user_defined_symbols=list(chat_template.GEMMA4.markers),
    byte_fallback=True,
    normalization_rule_name="identity",  # Gemma's tokenizers keep text verbatim
    add_dummy_prefix=False,
    remove_extra_whitespaces=False,
    num_threads=1,
    minloglevel=2,
  )
  path.write_bytes(model.getvalue())
  return tokenizer_lib.load_tokenizer("gemma4", str(path))


def test_gemma4_tokenizer_gets_gemma4_turns_and_user_markers_stay_text(gemma4_style_tokenizer):
  tok = gemma4_style_tokenizer
  assert chat_template.for_tokenizer(tok) is chat_template.GEMMA4
  start, end = (tok._sp.PieceToId(m) for m in chat_template.GEMMA4.markers)
  ids = batching.encode_prompt(tok, "say <|turn> and <turn|>")
  assert ids[0] == tok.special_tokens.BOS
  # Only the template's two opening and one closing marker are control pieces; the user's are text.
  assert ids.count(start) == 2 and ids.count(end) == 1
  assert tok.decode(ids[1:]) == chat_template.format_prompt("say <|turn> and <turn|>", chat_template.GEMMA4)
  response = batching.encode_response(tok, "7")
  assert response[-1] == end
