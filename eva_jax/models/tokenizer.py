"""Tokenizers: the real Gemma sentencepiece models (from a user-given path) and the embedded one.

The embedded tokenizer is a small sentencepiece model trained on the embedded task's corpus with
Gemma's special-token layout (pad 0, eos 1, bos 2, unk 3, mask 4, then `<start_of_turn>` and
`<end_of_turn>`), digits split into single tokens and byte fallback, like Gemma's own. The trained
`.model` ships in `eva_jax/assets/`; `python -m eva_jax.models.tokenizer` rebuilds it bit for bit.
Every tokenizer returned here is a `gm.text.Tokenizer`, so the gemma library's sampler accepts it.
"""

import dataclasses
import enum
import io
import pathlib
import sys

from gemma import gm
import sentencepiece as spm

from eva_jax.models import chat_template
from eva_jax.tasks import addition

EMBEDDED_MODEL_PATH = pathlib.Path(__file__).parent.parent / "assets" / "embedded_tokenizer.model"
EMBEDDED_VOCAB_SIZE = 512
KINDS = ("embedded", "gemma2", "gemma3", "gemma4")


class EmbeddedSpecialTokens(enum.IntEnum):
  """Special-token ids of the embedded tokenizer: Gemma's layout, compacted."""

  PAD = 0
  EOS = 1
  BOS = 2
  UNK = 3
  MASK = 4
  START_OF_TURN = 5  # <start_of_turn>
  END_OF_TURN = 6  # <end_of_turn>
  # The gemma library's sampler stops on this id too; we have no tool turns, so alias EOS.
  BEGIN_OF_TOOL_RESPONSE = 1


@dataclasses.dataclass(frozen=True)
class EmbeddedTokenizer(gm.text.Tokenizer):
  """The project's own small tokenizer for the embedded task (see module docstring)."""

  path: str = str(EMBEDDED_MODEL_PATH)
  special_tokens = EmbeddedSpecialTokens
  VERSION = "eva_embedded"


def _corpus():
  """The task's text as whole chat exchanges, so the template's pieces are learned too."""
  lines = addition.corpus()
  for prompt, answer in zip(lines, lines):
    yield chat_template.format_dialog(prompt, answer)


def train_embedded_model() -> bytes:
  """Trains the embedded sentencepiece model on the task corpus; deterministic (one thread)."""
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
    sentence_iterator=_corpus(),
    model_writer=model,
    model_type="bpe",
    vocab_size=EMBEDDED_VOCAB_SIZE,
    pad_id=0,
    eos_id=1,
    bos_id=2,
    unk_id=3,
    control_symbols=["<mask>"],
    user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
    split_digits=True,
    byte_fallback=True,
    # Gemma's tokenizer keeps text verbatim: no normalisation, no dummy prefix.
    normalization_rule_name="identity",
    add_dummy_prefix=False,
    remove_extra_whitespaces=False,
    allow_whitespace_only_pieces=True,
    character_coverage=1.0,
    num_threads=1,
    minloglevel=2,
  )
  return model.getvalue()


def _check_model_file(path) -> None:
  """A local `.model` file that sentencepiece cannot read is named now, not deep inside the first encode."""
  if "://" in str(path):
    return  # remote (gs://...): read by gemma's own loader
  try:
    spm.SentencePieceProcessor().LoadFromSerializedProto(pathlib.Path(path).read_bytes())
  except (RuntimeError, OSError) as e:
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ValueError(f"tokenizer model {path} is not a sentencepiece model ({reason})") from None


def load_tokenizer(kind: str, path: str | None = None) -> gm.text.Tokenizer:
  """Returns the tokenizer of `kind` (one of `KINDS`).

  Args:
    kind: which special-token layout and vocabulary to use.
    path: the sentencepiece `.model` file; required for the real Gemma tokenizers (nothing is
      downloaded), optional for the embedded one (defaults to the shipped model).
  """
  if kind == "embedded":
    _check_model_file(path or EMBEDDED_MODEL_PATH)
    return EmbeddedTokenizer(path=str(path or EMBEDDED_MODEL_PATH))
  if kind not in KINDS:
    raise ValueError(f"tokenizer kind {kind!r} is not one of {KINDS}")
  if not path:
    raise ValueError(f"the {kind} tokenizer needs a path to its .model file (nothing is downloaded)")
  if not pathlib.Path(path).exists() and "://" not in str(path):
    raise FileNotFoundError(f"tokenizer model {path} does not exist")
  _check_model_file(path)
  classes = {
    "gemma2": gm.text.Gemma2Tokenizer,
    "gemma3": gm.text.Gemma3Tokenizer,
    "gemma4": gm.text.Gemma4Tokenizer,
  }
  return classes[kind](path=str(path))


if __name__ == "__main__":
  EMBEDDED_MODEL_PATH.write_bytes(train_embedded_model())
  print(f"wrote {EMBEDDED_MODEL_PATH}", file=sys.stderr)
