"""Benchmark answers from our sampler: one response per prompt, and multi-turn conversations answered
turn by turn with the earlier questions and answers in context.

The sampler wraps each prompt in one Gemma user turn (`chat_template.format_prompt`). A later turn
needs the whole conversation in Gemma's multi-turn template instead:

    <start_of_turn>user\\n{q1}<end_of_turn>\\n<start_of_turn>model\\n{a1}<end_of_turn>\\n
    <start_of_turn>user\\n{q2}<end_of_turn>\\n<start_of_turn>model\\n

`sampler_prompt(history, question)` is the `chat_template.Conversation` that the sampler encodes as
exactly that (markers from the template only: a question or answer that contains "<end_of_turn>"
cannot end its turn early), so one jitted sampler serves every turn and every benchmark.
"""

from collections.abc import Callable
from collections.abc import Sequence
import dataclasses
from typing import Any

import jax

from eva_jax.models import batching
from eva_jax.models import chat_template
from eva_jax.sampling import sampler

# (prompts, key, temperature or None for the configured one) -> one response per prompt (None: the
# prompt was skipped as too long).
Respond = Callable[[Sequence[chat_template.Prompt], int, float | None], list[str | None]]


def conversation_text(history: Sequence[tuple[str, str]], question: str) -> str:
  """Gemma chat text of the (question, answer) turns in `history`, then `question` awaiting its answer."""
  return chat_template.prompt_text(sampler_prompt(history, question))


def sampler_prompt(history: Sequence[tuple[str, str]], question: str) -> chat_template.Prompt:
  """The prompt that makes `sampler.sample` condition on `conversation_text(history, question)`."""
  if not history:
    return question
  return chat_template.Conversation(tuple((q, a) for q, a in history), question)


@dataclasses.dataclass(frozen=True)
class Fitted:
  """A question cut to fit the cache (`truncate`) or left out (`skip`), as a `Responder` recorded it."""

  question: str  # its first 80 characters
  tokens: int  # the prompt's tokens with the chat template (and earlier turns)
  limit: int  # what the cache leaves next to the answer
  cut_tokens: int | None  # tokens cut from the question's start; None = skipped


@dataclasses.dataclass(frozen=True)
class Responder:
  """One response per prompt from `params` with `sampling` (num_samples is ignored); a `Respond`.

  Call i of a run passes its own `key`, folded into `rng`, so sampled answers are reproducible.
  Responses are stripped of surrounding whitespace, as the benchmarks' own answer scripts do.
  A prompt longer than the cache leaves next to `max_new_tokens` follows `long_prompts`: "truncate"
  cuts the (last) question from the left until it fits, "skip" answers None, "fail" raises; each
  case is appended to `fitted`.
  """

  model: Any
  params: Any
  tokenizer: Any
  sampling: sampler.SamplingConfig
  rng: jax.Array
  mesh: jax.sharding.Mesh | None = None
  progress: bool | None = None
  long_prompts: str = "fail"
  fitted: list = dataclasses.field(default_factory=list)

  def __call__(
    self, prompts: Sequence[chat_template.Prompt], key: int = 0, temperature: float | None = None
  ) -> list[str | None]:
    config = dataclasses.replace(self.sampling, num_samples=1)
    if temperature is not None:
      config = dataclasses.replace(config, temperature=temperature)
    fitted = [self._fit(p, config.max_cache_length - config.max_new_tokens) for p in prompts]
    rows = [i for i, p in enumerate(fitted) if p is not None]
    out: list[str | None] = [None] * len(prompts)
    if rows:
      samples = sampler.sample(
        self.model,
        self.params,
        self.tokenizer,
        [fitted[i] for i in rows],
        config,
        jax.random.fold_in(self.rng, key),
        mesh=self.mesh,
        progress=self.progress,
      )
      for i, text in zip(rows, samples.text, strict=True):
        out[i] = text.strip()
    return out

  def _fit(self, prompt: chat_template.Prompt, limit: int) -> chat_template.Prompt | None:
    tokens = len(batching.encode_prompt(self.tokenizer, prompt))
    if tokens <= limit or self.long_prompts == "fail":
      return prompt  # "fail": the sampler raises, naming the prompt
    question = str(prompt)
    if self.long_prompts == "skip":
      self.fitted.append(Fitted(question[:80], tokens, limit, None))
      return None
    ids = self.tokenizer.encode(question)
    # Keep the question's last tokens: the template and earlier turns take `tokens - len(ids)`.
    keep = len(ids) - (tokens - limit)
    while keep > 0:
      text = self.tokenizer.decode(ids[len(ids) - keep :])
      cut = _with_question(prompt, text)
      if len(batching.encode_prompt(self.tokenizer, cut)) <= limit:  # re-encoding may merge differently
        self.fitted.append(Fitted(question[:80], tokens, limit, len(ids) - keep))
        return cut
      keep -= 1
    self.fitted.append(Fitted(question[:80], tokens, limit, None))  # earlier turns alone overflow
    return None

  def count_tokens(self, text: str) -> int:
    return len(self.tokenizer.encode(text))


def _with_question(prompt: chat_template.Prompt, question: str) -> chat_template.Prompt:
  if isinstance(prompt, chat_template.Conversation):
    return dataclasses.replace(prompt, question=question)
  return question


def answer_conversations(
  respond: Respond,
  conversations: Sequence[Sequence[str]],
  temperatures: Sequence[float | None] | None = None,
) -> list[list[str | None]]:
  """Answers every user turn of every conversation; turn k sees turns < k and their answers.

  Turn k of all conversations that have one is answered in one `respond` call per distinct
  temperature (`temperatures[i]` for conversation i; None = the responder's own setting). A turn
  answered None (skipped as too long) ends its conversation: its answers end with that None.
  """
  if temperatures is None:
    temperatures = [None] * len(conversations)
  if len(temperatures) != len(conversations):
    raise ValueError(f"{len(temperatures)} temperatures for {len(conversations)} conversations")
  distinct = list(dict.fromkeys(temperatures))
  answers: list[list[str | None]] = [[] for _ in conversations]
  for turn in range(max(map(len, conversations), default=0)):
    for group, temperature in enumerate(distinct):
      members = [
        i
        for i, c in enumerate(conversations)
        if len(c) > turn and temperatures[i] == temperature and None not in answers[i]
      ]
      if not members:
        continue
      prompts = [
        sampler_prompt(list(zip(conversations[i][:turn], answers[i])), conversations[i][turn])
        for i in members
      ]
      replies = respond(prompts, turn * len(distinct) + group, temperature)
      for i, reply in zip(members, replies, strict=True):
        answers[i].append(reply)
  return answers
