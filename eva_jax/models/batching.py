"""Token batches for scoring and training: prompts left-padded, responses right-padded.

Layout of one row (P = prompt columns, R = response columns, L = P + R):

    [pad ... pad <bos> chat-formatted prompt][response tokens <end_of_turn> pad ... pad]

Every response starts at column P, so `score_start = P` and log-probs never unembed a prompt
column. Lengths are rounded up to multiples of `length_multiple` (and rows to `row_multiple`) so a
long run compiles a handful of shapes, not one per batch.
"""

from collections.abc import Sequence
import dataclasses

from gemma import gm
import numpy as np

from eva_jax.models import chat_template


@dataclasses.dataclass(frozen=True)
class TokenBatch:
  """Host-side batch. tokens/masks are `[B, L]` numpy arrays; rows >= `num_real` are padding."""

  tokens: np.ndarray  # int32
  input_mask: np.ndarray  # bool, True on real tokens
  response_mask: np.ndarray  # bool, True on response tokens (the ones scored)
  score_start: int  # = prompt columns P; first column that holds a response token
  num_real: int  # rows before padding rows were added


def _round_up(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


def encode_pieces(
  tokenizer: gm.text.Tokenizer, pieces: Sequence[chat_template.Piece], add_bos: bool = False
) -> list[int]:
  """Ids of the pieces' text in which only template pieces can yield turn-marker tokens.

  Text without a marker inside a content piece is encoded in one call, exactly as
  `tokenizer.encode(text)` (so nothing changes for ordinary prompts). A marker inside user or
  model text is split after its "<" into separately encoded chunks: sentencepiece then never sees
  the whole marker and it stays plain text (it decodes back to the same string).
  """
  markers = chat_template.for_tokenizer(tokenizer).markers
  chunks = [""]
  for text, template in pieces:
    start = 0
    if not template:
      for cut in sorted(i + 1 for m in markers for i in _find_all(text, m)):
        chunks[-1] += text[start:cut]
        chunks.append("")
        start = cut
    chunks[-1] += text[start:]
  ids: list[int] = []
  for i, chunk in enumerate(chunks):
    ids += tokenizer.encode(chunk, add_bos=add_bos and i == 0)
  return ids


def _find_all(text: str, sub: str) -> list[int]:
  found, i = [], text.find(sub)
  while i >= 0:
    found.append(i)
    i = text.find(sub, i + 1)
  return found


def encode_prompt(tokenizer: gm.text.Tokenizer, prompt: chat_template.Prompt) -> list[int]:
  """BOS + the chat-formatted prompt (one user turn, or a `Conversation`); markers in it stay text."""
  template = chat_template.for_tokenizer(tokenizer)
  return encode_pieces(tokenizer, chat_template.prompt_pieces(prompt, template), add_bos=True)


def encode_response(tokenizer: gm.text.Tokenizer, response: str) -> list[int]:
  """The response then the end-of-turn marker; markers inside the response stay text."""
  return encode_pieces(
    tokenizer, chat_template.response_pieces(response, chat_template.for_tokenizer(tokenizer))
  )


def encode_prompts(
  tokenizer: gm.text.Tokenizer, prompts: Sequence[chat_template.Prompt], max_len: int | None = None
) -> list[list[int]]:
  """BOS + chat-formatted prompt ids; ValueError naming the prompt index if empty or too long."""
  encoded = []
  for i, prompt in enumerate(prompts):
    if not str(prompt).strip():
      raise ValueError(f"prompt {i} is empty")
    ids = encode_prompt(tokenizer, prompt)
    if max_len is not None and len(ids) > max_len:
      raise ValueError(
        f"prompt {i} has {len(ids)} tokens (with chat template); the limit is {max_len}: {str(prompt)[:60]!r}"
      )
    encoded.append(ids)
  return encoded


def make_batch(
  tokenizer: gm.text.Tokenizer,
  prompts: Sequence[str],
  responses: Sequence[str],
  *,
  max_prompt_len: int | None = None,
  max_response_len: int | None = None,
  length_multiple: int = 8,
  row_multiple: int = 1,
) -> TokenBatch:
  """Encodes (prompt, response) pairs; each response ends its turn with `<end_of_turn>`."""
  if len(prompts) != len(responses):
    raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
  if not prompts:
    raise ValueError("empty batch")
  prompt_ids = encode_prompts(tokenizer, prompts, max_prompt_len)
  response_ids = []
  for i, response in enumerate(responses):
    ids = encode_response(tokenizer, response)
    if max_response_len is not None and len(ids) > max_response_len:
      raise ValueError(f"response {i} has {len(ids)} tokens; the limit is {max_response_len}")
    response_ids.append(ids)
  return layout(prompt_ids, response_ids, length_multiple=length_multiple, row_multiple=row_multiple)


def layout(
  prompt_ids: Sequence[Sequence[int]],
  response_ids: Sequence[Sequence[int]],
  *,
  length_multiple: int = 8,
  row_multiple: int = 1,
) -> TokenBatch:
  """Places already-encoded prompts (left-padded) and responses (right-padded) in one `TokenBatch`.

  Use it for sampled responses: their token ids are scored as sampled, not re-tokenized.
  """
  if len(prompt_ids) != len(response_ids) or not prompt_ids:
    raise ValueError(
      f"need equal, non-zero numbers of prompts and responses, got {len(prompt_ids)}, {len(response_ids)}"
    )
  prompt_cols = _round_up(max(map(len, prompt_ids)), length_multiple)
  response_cols = _round_up(max(map(len, response_ids)), length_multiple)
  rows = _round_up(len(prompt_ids), row_multiple)
  tokens = np.zeros((rows, prompt_cols + response_cols), np.int32)
  input_mask = np.zeros(tokens.shape, bool)
  response_mask = np.zeros(tokens.shape, bool)
  for row, (p, r) in enumerate(zip(prompt_ids, response_ids)):
    tokens[row, prompt_cols - len(p) : prompt_cols] = p
    tokens[row, prompt_cols : prompt_cols + len(r)] = r
    input_mask[row, prompt_cols - len(p) : prompt_cols + len(r)] = True
    response_mask[row, prompt_cols : prompt_cols + len(r)] = True
  return TokenBatch(tokens, input_mask, response_mask, prompt_cols, len(prompt_ids))
