"""The Gemma chat templates (one user turn, one model turn) and their inverse.

    Gemma 2 / 3:  <start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n{response}<end_of_turn>
    Gemma 4:      <|turn>user\n{prompt}<turn|>\n<|turn>model\n{response}<turn|>

Gemma 4 keeps the layout and renames the markers, exactly as the gemma library renders a turn
(`dialog.Format.GEMMA4`; tests/models/test_chat_template.py compares the two). `for_tokenizer`
picks a tokenizer's template; every function takes `template=` and defaults to Gemma 2 / 3's.

BOS is not part of the text: tokenizers add it as a token (`encode(..., add_bos=True)`), so user
text that happens to contain "<bos>" can never become the control token. The turn markers are
user-defined pieces that sentencepiece matches anywhere in raw text, so `pieces` tells the encoder
(`models.batching.encode_pieces`) which text is the template's and which is a user's or a model's:
only the template's markers become control tokens; the same strings in a prompt stay text.
"""

from collections.abc import Sequence
import dataclasses


@dataclasses.dataclass(frozen=True)
class Template:
  """A Gemma turn format: the strings that open and close a turn."""

  start: str
  end: str

  @property
  def user_prefix(self) -> str:
    return f"{self.start}user\n"

  @property
  def model_prefix(self) -> str:
    return f"{self.start}model\n"

  @property
  def markers(self) -> tuple[str, str]:
    """Strings a tokenizer turns into turn-structure tokens wherever they occur in its input."""
    return (self.start, self.end)


GEMMA = Template("<start_of_turn>", "<end_of_turn>")  # Gemma 2 and 3, and the embedded tokenizer
GEMMA4 = Template("<|turn>", "<turn|>")

START, END = GEMMA.start, GEMMA.end
USER_PREFIX, MODEL_PREFIX = GEMMA.user_prefix, GEMMA.model_prefix
MARKERS = GEMMA.markers


def for_tokenizer(tokenizer) -> Template:
  """The template whose markers `tokenizer`'s turn tokens spell (Gemma 4's tokenizer is version 4)."""
  return GEMMA4 if getattr(tokenizer, "VERSION", None) == 4 else GEMMA


@dataclasses.dataclass(frozen=True)
class Conversation:
  """A multi-turn prompt: earlier (question, answer) turns and the question awaiting its answer."""

  history: tuple[tuple[str, str], ...]
  question: str

  def __str__(self) -> str:
    return self.question


# A prompt as the sampler and the batchers take it: one user turn, or a conversation.
Prompt = str | Conversation
# (text, is_template): the template's own text, or a user's or a model's (never control tokens).
Piece = tuple[str, bool]


def format_prompt(prompt: str, template: Template = GEMMA) -> str:
  """The text the model is conditioned on to answer `prompt` (ends where the response starts)."""
  t = template
  return f"{t.user_prefix}{prompt}{t.end}\n{t.model_prefix}"


def format_response(response: str, template: Template = GEMMA) -> str:
  """The model-turn text the model is trained to produce after `format_prompt` (ends the turn)."""
  return f"{response}{template.end}"


def format_dialog(prompt: str, response: str, template: Template = GEMMA) -> str:
  """A whole single-turn exchange."""
  return format_prompt(prompt, template) + format_response(response, template)


def prompt_pieces(prompt: Prompt, template: Template = GEMMA) -> list[Piece]:
  """`format_prompt(prompt)` (or the conversation's multi-turn text) as template and content pieces."""
  turns: Sequence[tuple[str, str]] = prompt.history if isinstance(prompt, Conversation) else ()
  question = prompt.question if isinstance(prompt, Conversation) else prompt
  t = template
  pieces: list[Piece] = []
  for q, a in turns:
    pieces += [
      (t.user_prefix, True),
      (q, False),
      (f"{t.end}\n{t.model_prefix}", True),
      (a, False),
      (f"{t.end}\n", True),
    ]
  return pieces + [(t.user_prefix, True), (question, False), (f"{t.end}\n{t.model_prefix}", True)]


def response_pieces(response: str, template: Template = GEMMA) -> list[Piece]:
  """`format_response(response)` as content and template pieces."""
  return [(response, False), (template.end, True)]


def prompt_text(prompt: Prompt, template: Template = GEMMA) -> str:
  """The whole text of `prompt_pieces(prompt)`."""
  return "".join(text for text, _ in prompt_pieces(prompt, template))


def parse_dialog(text: str, template: Template = GEMMA) -> tuple[str, str | None]:
  """Inverse of `format_dialog`/`format_prompt`: returns (prompt, response or None).

  The response ends at the first `<end_of_turn>` after the model prefix, or at the end of the
  text when the model stopped without closing its turn (e.g. at the length limit).

  Raises:
    ValueError: when `text` does not start with a user turn.
  """
  t = template
  if not text.startswith(t.user_prefix):
    raise ValueError(f"not a Gemma chat text (expected it to start with {t.user_prefix!r}): {text[:60]!r}")
  body = text[len(t.user_prefix) :]
  separator = f"{t.end}\n{t.model_prefix}"
  prompt_end = body.rfind(separator)
  if prompt_end < 0:
    end = body.find(t.end)
    return (body if end < 0 else body[:end]), None
  prompt = body[:prompt_end]
  response = body[prompt_end + len(separator) :]
  return prompt, extract_response(response, t)


def extract_response(generated: str, template: Template = GEMMA) -> str:
  """The response text in model output: everything before the first end-of-turn marker."""
  end = generated.find(template.end)
  return generated if end < 0 else generated[:end]
