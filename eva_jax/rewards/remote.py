"""Remote rewards: an HTTP client for a reward model served elsewhere (e.g. ArmoRM behind a small server).

It speaks three wire formats (`protocol`, see `protocols.py`): "eva" (below; `server.py` implements
the server side and `python -m eva_jax.jobs.serve_rewards` runs it), "vllm" (a reward model served by
`vllm serve`, one conversation per request) and "openrlhf" (OpenRLHF's remote reward model). All
three share what follows: batching, concurrency, retries, timeouts, null/NaN rewards, the token.
The eva protocol:

    POST <url>                      Content-Type: application/json
                                    Authorization: Bearer <token>   (only if api_key_env is set)
    {"prompts": ["...", ...], "responses": ["...", ...]}            equal lengths, <= batch_size pairs

    200 {"rewards": [0.75, -1.5, null, ...]}     one number per pair, in order; null = not scorable (NaN)
    4xx/5xx {"error": "what went wrong"}         the body is optional; our server answers 400 (malformed
                                                 request), 401 (token), 413 (too many pairs), 422 (pairs
                                                 the source refuses, e.g. an empty prompt), 500 (failure)

Pairs go out in batches of `batch_size`, up to `max_concurrency` requests at once. `timeout_s`
bounds each attempt as a whole (connect, send, status line, headers and body: `deadline_http.py`),
so a server that trickles its answer cannot hold a request; through a proxy named by the
environment (HTTP_PROXY, ...) httpx's own transport is kept and the deadline bounds the body only.
Connection errors, timeouts, 429 and 5xx answers are retried up to `max_retries` times after
`backoff_s * 2**retry` seconds (with jitter; a numeric `Retry-After` header is honoured up to 60 s).
Other 4xx answers, non-JSON bodies, a missing `rewards` list, a wrong number of rewards or
non-numbers (integers no float holds included) fail at once. Every failure raises
`RewardServerError` naming the URL, the pairs and the cause. The bearer token never appears in
messages, logs, stats or `repr`.

On several hosts (a multi-host JAX run) every process calls `score` with the same pairs; only
process 0 sends the requests, and its rewards are broadcast to the others (bit for bit), so the
server sees each batch once and every host trains on identical rewards. A failure on process 0
raises there and, as `RewardServerError`, on every other process. `stats` count process 0's requests.
"""

from collections.abc import Sequence
import concurrent.futures
import dataclasses
import random
import threading
import time

import httpx
import jax
import numpy as np

from eva_jax.parallel import distributed
from eva_jax.rewards import base
from eva_jax.rewards import credentials
from eva_jax.rewards import deadline_http
from eva_jax.rewards import protocols

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0


class RewardServerError(RuntimeError):
  """The reward server could not be reached, kept failing, or answered something unusable."""


@dataclasses.dataclass
class RemoteStats:
  """Counters of one client, for logs and metrics."""

  requests: int = 0  # HTTP attempts, retries included
  retries: int = 0  # attempts after a retryable failure
  pairs: int = 0  # pairs scored successfully
  seconds: float = 0.0  # wall time inside `score`


def _error_detail(response: httpx.Response) -> str:
  try:
    body = response.json()
  except ValueError:
    body = None
  if isinstance(body, dict) and "error" in body:  # eva; vLLM nests {"error": {"message": ...}}
    error = body["error"]
    return str(error.get("message", error) if isinstance(error, dict) else error)[:500]
  if isinstance(body, dict) and "message" in body:  # vLLM's older {"object": "error", "message": ...}
    return str(body["message"])[:500]
  return response.text[:200]


def _rewards_from(response: httpx.Response, expected: int, protocol: str) -> np.ndarray:
  """The rewards of a 2xx answer as float32 (null -> NaN); ValueError describing what is wrong."""
  try:
    body = response.json()
  except (ValueError, UnicodeDecodeError):
    raise ValueError(f"answered non-JSON: {response.text[:200]!r}") from None
  return np.asarray(protocols.read_rewards(protocol, body, expected), np.float32)


class RemoteRewardSource:
  """Posts batches of pairs to `url` (see the module docstring for the protocol)."""

  def __init__(
    self,
    url: str,
    *,
    protocol: str = "eva",
    model: str = "",
    query_template: str = "gemma",
    api_key_env: str = "",
    batch_size: int = 64,
    max_concurrency: int = 4,
    timeout_s: float = 60.0,
    max_retries: int = 5,
    backoff_s: float = 0.5,
    progress: bool | None = None,
  ):
    if protocol not in protocols.PROTOCOLS:
      raise ValueError(f"unknown reward protocol {protocol!r}; expected one of {protocols.PROTOCOLS}")
    self.url = url
    self.protocol = protocol
    self.model = model
    self.template = protocols.query_template(query_template)
    self.api_key_env = api_key_env
    self.batch_size = batch_size
    self.max_concurrency = max_concurrency
    self.timeout_s = timeout_s
    self.max_retries = max_retries
    self.backoff_s = backoff_s
    self.progress = progress
    self.stats = RemoteStats()
    self._lock = threading.Lock()
    self._secret = credentials.read_api_key(api_key_env)
    headers = {"Authorization": f"Bearer {self._secret}"} if self._secret else {}
    limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
    # None: httpx's own transport, which routes through the environment's proxy.
    transport = None if deadline_http.uses_env_proxy(url) else deadline_http.DeadlineTransport(limits)
    self._client = httpx.Client(headers=headers, timeout=timeout_s, limits=limits, transport=transport)

  def __repr__(self) -> str:
    auth = f"bearer token from ${self.api_key_env}" if self._secret else "none"
    return (
      f"RemoteRewardSource(url={self.url!r}, protocol={self.protocol}, auth={auth}, batch_size={self.batch_size}, "
      f"max_concurrency={self.max_concurrency}, timeout_s={self.timeout_s}, max_retries={self.max_retries})"
    )

  def score(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    base.check_pairs(prompts, responses)
    if jax.process_count() == 1:
      return self._score_here(prompts, responses)
    try:  # process 0 asks the server; everyone gets its answer
      return distributed.run_on_main(lambda: self._score_here(prompts, responses), (len(prompts),))
    except distributed.MainProcessError as e:
      raise RewardServerError(credentials.scrub(str(e), self._secret)) from None

  def _score_here(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
    """Posts the batches from this process."""
    start = time.perf_counter()
    out = np.zeros(len(prompts), np.float32)
    size = protocols.pairs_per_request(self.protocol, self.batch_size)
    spans = [(b, min(b + size, len(prompts))) for b in range(0, len(prompts), size)]
    with (
      base.progress_bar(len(prompts), self.batch_size, "remote rewards", self.progress) as bar,
      concurrent.futures.ThreadPoolExecutor(self.max_concurrency, thread_name_prefix="reward") as pool,
    ):
      futures = {pool.submit(self._post, prompts[b:e], responses[b:e], b): (b, e) for b, e in spans}
      try:
        for future in concurrent.futures.as_completed(futures):
          begin, end = futures[future]
          out[begin:end] = future.result()
          bar.update(end - begin)
      except BaseException:
        for future in futures:
          future.cancel()
        raise
      finally:
        with self._lock:
          self.stats.seconds += time.perf_counter() - start
    return out

  def _count(self, **increments) -> None:
    with self._lock:
      for name, value in increments.items():
        setattr(self.stats, name, getattr(self.stats, name) + value)

  def _fail(self, what: str, begin: int, count: int) -> RewardServerError:
    message = f"reward server {self.url} (pairs {begin}..{begin + count - 1}): {what}"
    return RewardServerError(credentials.scrub(message, self._secret))

  def _delay(self, retry: int, response: httpx.Response | None) -> float:
    delay = self.backoff_s * 2**retry * (0.5 + random.random() / 2)
    retry_after = response.headers.get("Retry-After", "") if response is not None else ""
    if retry_after.replace(".", "", 1).isdigit():
      delay = max(delay, min(float(retry_after), MAX_RETRY_AFTER_S))
    return delay

  def _post(self, prompts: Sequence[str], responses: Sequence[str], begin: int) -> np.ndarray:
    payload = protocols.request_body(
      self.protocol, prompts, responses, model=self.model, template=self.template
    )
    problem, response = "", None
    for attempt in range(self.max_retries + 1):
      if attempt:
        self._count(retries=1)
        time.sleep(self._delay(attempt - 1, response))
      self._count(requests=1)
      try:
        response = self._post_once(payload)
      except httpx.TimeoutException:
        problem, response = f"timed out after {self.timeout_s}s", None
        continue
      except httpx.TransportError as e:
        problem, response = f"connection failed ({type(e).__name__}: {e})", None
        continue
      if response.is_success:
        try:
          rewards = _rewards_from(response, len(prompts), self.protocol)
        except ValueError as e:
          raise self._fail(str(e), begin, len(prompts)) from None
        self._count(pairs=len(prompts))
        return rewards
      problem = f"HTTP {response.status_code}: {_error_detail(response)}"
      if response.status_code not in RETRY_STATUS:
        raise self._fail(problem, begin, len(prompts))
    raise self._fail(f"failed {self.max_retries + 1} attempts; last: {problem}", begin, len(prompts))

  def _post_once(self, payload: dict) -> httpx.Response:
    """One POST whose whole answer must arrive within `timeout_s`.

    httpx's timeouts bound each read, so a server that trickles its answer a byte at a time would
    hold a request for as long as it likes: the transport's socket operations share one deadline,
    and the body is also streamed against it (the only bound left when a proxy is used).
    """
    deadline = time.monotonic() + self.timeout_s
    with (
      deadline_http.deadline(self.timeout_s),
      self._client.stream("POST", self.url, json=payload) as streamed,
    ):
      body = bytearray()
      for chunk in streamed.iter_bytes():
        body += chunk
        if time.monotonic() > deadline:
          raise httpx.ReadTimeout(f"answer not complete after {self.timeout_s}s", request=streamed.request)
      return httpx.Response(
        streamed.status_code, headers=streamed.headers, content=bytes(body), request=streamed.request
      )

  def close(self) -> None:
    self._client.close()
