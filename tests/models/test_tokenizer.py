import numpy as np
import pytest

from eva_jax.models import chat_template
from eva_jax.models import tokenizer as tokenizer_lib


def test_special_token_ids_follow_gemma_layout(tokenizer):
  special = tokenizer.special_tokens
  assert (special.PAD, special.EOS, special.BOS, special.UNK) == (0, 1, 2, 3)
  assert tokenizer.tokens[:7] == [
    "<pad>",
    "</s>",
    "<s>",
    "<unk>",
    "<mask>",
    "<start_of_turn>",
    "<end_of_turn>",
  ]
  assert tokenizer.encode("<start_of_turn>") == [special.START_OF_TURN]
  assert tokenizer.encode("<end_of_turn>") == [special.END_OF_TURN]
  assert tokenizer.encode("hi", add_bos=True, add_eos=True)[0] == 2
  assert tokenizer.encode("hi", add_bos=True, add_eos=True)[-1] == 1


def test_digits_are_single_tokens(tokenizer):
  assert tokenizer.split("907215") == list("907215")
  assert len({tokenizer.encode(d)[0] for d in "0123456789"}) == 10


@pytest.mark.parametrize(
  "text",
  [
    "What is 12 + 345?",
    "héllo {prompt} {{x}} 🙂\n\ttabs  and  spaces ",
    "<start_of_turn>user\nx<end_of_turn>",
  ],
)
def test_round_trip_is_exact(tokenizer, text):
  ids = tokenizer.encode(text)
  assert tokenizer.special_tokens.UNK not in ids
  assert tokenizer.decode(ids) == text


def test_chat_text_tokenizes_turn_markers_as_single_tokens(tokenizer):
  ids = tokenizer.encode(chat_template.format_dialog("Add 1 and 2.", "Reversed sum: 3"))
  special = tokenizer.special_tokens
  assert ids.count(special.START_OF_TURN) == 2
  assert ids.count(special.END_OF_TURN) == 2
  assert ids[-1] == special.END_OF_TURN


def test_shipped_model_is_rebuilt_bit_for_bit():
  assert tokenizer_lib.train_embedded_model() == tokenizer_lib.EMBEDDED_MODEL_PATH.read_bytes()


def test_vocab_fits_the_tiny_model(tokenizer, tiny_model):
  assert tokenizer.vocab_size == tokenizer_lib.EMBEDDED_VOCAB_SIZE == tiny_model.config.num_embed


def test_real_gemma_tokenizer_needs_an_existing_path(tmp_path):
  with pytest.raises(ValueError, match="needs a path"):
    tokenizer_lib.load_tokenizer("gemma2")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    tokenizer_lib.load_tokenizer("gemma2", str(tmp_path / "missing.model"))
  with pytest.raises(ValueError, match="not one of"):
    tokenizer_lib.load_tokenizer("gemma7", "x")


def test_real_gemma_tokenizer_class_reads_a_user_given_model(tmp_path):
  # Any sentencepiece file works through the same path; the Gemma 2 class brings its special ids.
  path = tmp_path / "tok.model"
  path.write_bytes(tokenizer_lib.EMBEDDED_MODEL_PATH.read_bytes())
  tok = tokenizer_lib.load_tokenizer("gemma2", str(path))
  assert tok.special_tokens.END_OF_TURN == 107
  assert tok.decode(tok.encode("Add 4 and 5.")) == "Add 4 and 5."


def test_gemma_library_sampler_accepts_the_embedded_tokenizer(tokenizer, tiny_model, tiny_params):
  from gemma import gm

  sampler = gm.text.Sampler(model=tiny_model, params=tiny_params, tokenizer=tokenizer, cache_length=512)
  out = sampler.sample(chat_template.format_prompt("Add 4 and 5."), max_new_tokens=4, return_state=True)
  tokens = np.asarray(out.tokens)
  assert tokens[:4].min() >= 0 and tokens[:4].max() < tokenizer.vocab_size
  assert isinstance(out.text, str)


@pytest.mark.parametrize("kind", ["embedded", "gemma2", "gemma3"])
def test_a_file_that_is_not_a_sentencepiece_model_is_named(kind, tmp_path):
  path = tmp_path / "tokenizer.model"
  path.write_bytes(b"<html>404 not found</html>" * 10)
  with pytest.raises(ValueError, match=rf"^tokenizer model {path} is not a sentencepiece model \("):
    tokenizer_lib.load_tokenizer(kind, str(path))
