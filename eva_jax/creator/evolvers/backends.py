"""Where the LLM evolver's rewrites come from: a Gemma model through our sampler, or an HTTP endpoint.

A backend turns a batch of meta-prompts into one `Completion` each, in order, and never raises
for a single bad request: a request that fails ends as `Completion(None, reason)`.

- `GemmaBackend` runs our sampler (chat template, KV cache, mesh) on any Gemma model and params,
  e.g. the solver's own; all requests of a chain step go through one `sampler.sample` call.
- `OpenAIBackend` calls an OpenAI-compatible `/chat/completions` endpoint (Gemini's OpenAI API,
  vLLM, ...) with the `openai` client: requests run on a thread pool (`max_concurrency`), their
  starts are spaced by a shared rate limiter, and the client itself retries 429, 5xx, timeouts and
  connection errors with exponential backoff (honouring `Retry-After`); the limiter paces first
  attempts only, the client's backoff paces retries. Each completion reports how many HTTP attempts
  it took (counted by an httpx request hook), so the creator's stats count the client's retries. A
  200 answer the client cannot use (no `choices` list, a null `message`, a legacy completions
  body, non-string content) is a dropped completion with its reason, never an exception; error text
  is scrubbed of the API key before it is logged. On several processes only process 0 sends the
  requests and its completions are broadcast to the others (`distributed.run_on_main_json`), so an
  endpoint sees each rewrite request once per run, and every host evolves the same pool.
"""

from collections.abc import Sequence
import concurrent.futures
import dataclasses
import os
import threading
import time
from typing import Protocol

from absl import logging
import jax
import numpy as np
import openai
import tqdm

from eva_jax.creator import config as creator_config
from eva_jax.models import batching
from eva_jax.parallel import distributed
from eva_jax.rewards import credentials
from eva_jax.sampling import sampler


@dataclasses.dataclass(frozen=True)
class Completion:
  text: str | None  # the model's answer; None when the request failed
  finish: str  # "stop", "length" (cut at max_new_tokens), or why `text` is None
  attempts: int = 1  # HTTP attempts the request took (1 + the client's retries)


class Backend(Protocol):
  def complete(self, prompts: Sequence[str], rng: np.random.Generator) -> list[Completion]: ...


class GemmaBackend:
  """Rewrites sampled by our sampler: one response per meta-prompt, seeded from the creator's rng."""

  def __init__(self, model, params, tokenizer, config: sampler.SamplingConfig, mesh=None):
    if config.num_samples != 1:
      raise ValueError(f"the evolver needs one rewrite per request, got num_samples={config.num_samples}")
    config.validate()
    self.model, self.params, self.tokenizer, self.config, self.mesh = model, params, tokenizer, config, mesh

  def fits(self, prompt: str) -> bool:
    ids = batching.encode_prompt(self.tokenizer, prompt)
    return len(ids) <= self.config.max_cache_length - self.config.max_new_tokens

  def complete(self, prompts: Sequence[str], rng: np.random.Generator) -> list[Completion]:
    out = [Completion(None, "too_long")] * len(prompts)
    rows = [i for i, p in enumerate(prompts) if self.fits(p)]
    key = jax.random.key(int(rng.integers(2**31)))
    if rows:
      samples = sampler.sample(
        self.model, self.params, self.tokenizer, [prompts[i] for i in rows], self.config, key, mesh=self.mesh
      )
      for row, i in enumerate(rows):
        out[i] = Completion(samples.text[row], samples.finish_reason[row])
    return out


def sampling_config(llm: creator_config.LLMConfig) -> sampler.SamplingConfig:
  """The sampler settings of the Gemma backend."""
  return sampler.SamplingConfig(
    num_samples=1,
    max_new_tokens=llm.max_new_tokens,
    temperature=llm.temperature,
    top_p=llm.top_p,
    batch_size=llm.batch_size,
    max_cache_length=llm.max_cache_length,
  )


class RateLimiter:
  """Spaces calls to `wait()` at least 1/per_second apart, across threads (0 = no limit)."""

  def __init__(self, per_second: float):
    self.interval = 1.0 / per_second if per_second > 0 else 0.0
    self._next = 0.0
    self._lock = threading.Lock()

  def wait(self) -> None:
    if not self.interval:
      return
    with self._lock:
      now = time.monotonic()
      start = max(now, self._next)
      self._next = start + self.interval
    time.sleep(start - now)


def _failure(error: Exception) -> str:
  """A short, countable name for why a request failed after the client's retries."""
  if isinstance(error, openai.APITimeoutError):
    return "timeout"
  if isinstance(error, openai.APIConnectionError):
    return "connection_error"
  if isinstance(error, openai.APIStatusError):
    return f"http_{error.status_code}"
  if isinstance(error, openai.APIResponseValidationError | ValueError | TypeError | KeyError):
    return "bad_response"
  return "api_error"


def _answer(response) -> tuple[str | None, str]:
  """(text, finish) of a chat-completions response, or (None, why) for a body the client cannot use.

  The client builds its response objects without validating them, so a 200 from a server that
  speaks another dialect arrives with None or foreign types where the schema says otherwise.
  """
  choices = response.choices
  if not isinstance(choices, list):
    return None, "bad_response"
  if not choices:
    return None, "no_choices"
  message = getattr(choices[0], "message", None)
  if message is None:  # `"message": null`, or a legacy completions body ({"text": ...})
    return None, "no_message"
  content = getattr(message, "content", None)
  if not isinstance(content, str):
    return None, "no_content"
  return content, "length" if getattr(choices[0], "finish_reason", None) == "length" else "stop"


class OpenAIBackend:
  """An OpenAI-compatible chat-completions endpoint (see module docstring)."""

  def __init__(self, llm: creator_config.LLMConfig, progress: bool | None = None):
    if llm.api_key_env:
      api_key = os.environ.get(llm.api_key_env)
      if not api_key:
        raise ValueError(
          f"environment variable {llm.api_key_env} (named by config.creator.llm.api_key_env) is not set"
        )
    else:
      api_key = "none"  # local servers (vLLM) accept any key; the client insists on one
    self.llm = llm
    self.progress = progress
    self._secret = api_key if llm.api_key_env else None
    self._attempts = threading.local()  # per worker thread: the sync client sends on the caller's thread
    self.client = openai.OpenAI(
      base_url=llm.base_url,
      api_key=api_key,
      max_retries=llm.max_retries,
      timeout=llm.timeout_s,
      http_client=openai.DefaultHttpxClient(event_hooks={"request": [self._count_attempt]}),
    )
    self.limiter = RateLimiter(llm.requests_per_second)

  def _count_attempt(self, request) -> None:
    del request
    self._attempts.count = getattr(self._attempts, "count", 0) + 1

  def _request(self, prompt: str) -> Completion:
    self.limiter.wait()
    self._attempts.count = 0
    try:
      response = self.client.chat.completions.create(
        model=self.llm.model,
        messages=[{"role": "user", "content": prompt}],
        temperature=self.llm.temperature,
        top_p=self.llm.top_p,
        max_tokens=self.llm.max_new_tokens,
      )
      text, finish = _answer(response)
    except Exception as error:  # one failed request must not end a creator round
      reason = _failure(error)
      message = credentials.scrub(str(error), self._secret)
      logging.log_every_n(logging.WARNING, "evolver request failed (%s): %s", 20, reason, message)
      text, finish = None, reason
    return Completion(text, finish, max(self._attempts.count, 1))

  def complete(self, prompts: Sequence[str], rng: np.random.Generator) -> list[Completion]:
    """The rewrites of `prompts`. On several processes only process 0 sends the requests (one per
    prompt per run, not per host) and every process gets its answers (a collective)."""
    del rng  # sampling happens on the server
    answers = distributed.run_on_main_json(
      lambda: [dataclasses.astuple(c) for c in self._complete_here(prompts)]
    )
    return [Completion(*row) for row in answers]

  def _complete_here(self, prompts: Sequence[str]) -> list[Completion]:
    show = len(prompts) > 16 if self.progress is None else self.progress
    with concurrent.futures.ThreadPoolExecutor(self.llm.max_concurrency) as pool:
      futures = [pool.submit(self._request, p) for p in prompts]
      for _ in tqdm.tqdm(
        concurrent.futures.as_completed(futures), total=len(futures), desc="evolving", disable=not show
      ):
        pass
      return [f.result() for f in futures]
