"""The Gemma chat template (one user turn, one model turn) and its inverse.

    <start_of_turn>user\n{prompt}<end_of_turn>\n<start_of_turn>model\n{response}<end_of_turn>

BOS is not part of the text: tokenizers add it as a token (`encode(..., add_bos=True)`), so user
text that happens to contain "<bos>" can never become the control token. The turn markers are
user-defined pieces that sentencepiece matches anywhere in raw text, so `pieces` tells the encoder
(`models.batching.encode_pieces`) which text is the template's and which is a user's or a model's:
only the template's markers become control tokens; the same strings in a prompt stay text.
"""

from collections.abc import Sequence
import dataclasses

START = "<start_of_turn>"
END = "<end_of_turn>"
USER_PREFIX = f"{START}user\n"
MODEL_PREFIX = f"{START}model\n"
# Strings a tokenizer turns into turn-structure tokens wherever they occur in the text it is given.
MARKERS = (START, END)


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


def format_prompt(prompt: str) -> str:
  """The text the model is conditioned on to answer `prompt` (ends where the response starts)."""
  return f"{USER_PREFIX}{prompt}{END}\n{MODEL_PREFIX}"


def format_response(response: str) -> str:
  """The model-turn text the model is trained to produce after `format_prompt` (ends the turn)."""
  return f"{response}{END}"


def format_dialog(prompt: str, response: str) -> str:
  """A whole single-turn exchange."""
  return format_prompt(prompt) + format_response(response)


def prompt_pieces(prompt: Prompt) -> list[Piece]:
  """`format_prompt(prompt)` (or the conversation's multi-turn text) as template and content pieces."""
  turns: Sequence[tuple[str, str]] = prompt.history if isinstance(prompt, Conversation) else ()
  question = prompt.question if isinstance(prompt, Conversation) else prompt
  pieces: list[Piece] = []
  for q, a in turns:
    pieces += [
      (USER_PREFIX, True),
      (q, False),
      (f"{END}\n{MODEL_PREFIX}", True),
      (a, False),
      (f"{END}\n", True),
    ]
  return pieces + [(USER_PREFIX, True), (question, False), (f"{END}\n{MODEL_PREFIX}", True)]


def response_pieces(response: str) -> list[Piece]:
  """`format_response(response)` as content and template pieces."""
  return [(response, False), (END, True)]


def prompt_text(prompt: Prompt) -> str:
  """The whole text of `prompt_pieces(prompt)`."""
  return "".join(text for text, _ in prompt_pieces(prompt))


def parse_dialog(text: str) -> tuple[str, str | None]:
  """Inverse of `format_dialog`/`format_prompt`: returns (prompt, response or None).

  The response ends at the first `<end_of_turn>` after the model prefix, or at the end of the
  text when the model stopped without closing its turn (e.g. at the length limit).

  Raises:
    ValueError: when `text` does not start with a user turn.
  """
  if not text.startswith(USER_PREFIX):
    raise ValueError(f"not a Gemma chat text (expected it to start with {USER_PREFIX!r}): {text[:60]!r}")
  body = text[len(USER_PREFIX) :]
  prompt_end = body.rfind(f"{END}\n{MODEL_PREFIX}")
  if prompt_end < 0:
    end = body.find(END)
    return (body if end < 0 else body[:end]), None
  prompt = body[:prompt_end]
  response = body[prompt_end + len(f"{END}\n{MODEL_PREFIX}") :]
  return prompt, extract_response(response)


def extract_response(generated: str) -> str:
  """The response text in model output: everything before the first `<end_of_turn>`."""
  end = generated.find(END)
  return generated if end < 0 else generated[:end]
