"""The reward server: any reward source over HTTP, with the JSON protocol of `remote.py`.

`make_server(source, host=..., port=...)` returns a bound `ThreadingHTTPServer`; `serve.py` is its
command line. `POST /score` scores a batch (400: malformed request, 413: too large, 422: the source refused the
pairs, 500: the source failed); `GET /health` answers `{"status": "ok", "kind": ...}`.
`POST /get_reward` answers OpenRLHF's remote reward-model protocol (`protocols.py`), so OpenRLHF
and verl trainers can use a reward source of this project: each `query` is split back into prompt
and response with `query_template` (the chat template the trainer applied; its `prompts` field is
used when sent, and a query whose prompt the trainer cut from the left is split at the turn marker),
the stop tokens that end a response are dropped, and the answer is
{"rewards": [...], "scores": [...], "extra_logs": {}}. Given an `api_key` (the CLI reads it from
`--api_key_env`), requests must carry `Authorization: Bearer <key>` (else 401).
Connections are handled by threads; one batch is scored at a time, since the source owns the
device. Non-finite rewards go out as `null` at `/score` (the eva client applies its NaN policy).
OpenRLHF's protocol has no null and its client would train on a NaN, so a `/get_reward` batch with
a non-finite reward is answered 422 naming them, under the `nonfinite` policy "fail" and also under
"drop" (that client cannot skip one sample; the request's samples get no reward, and it says so).
Requests are logged (method, path, status, size), never their headers.

Under load and abuse: the listen backlog holds a burst of `LISTEN_BACKLOG` new connections; an
error answer closes the connection (a body left unread must not be parsed as the next request);
a negative or over-large `Content-Length` is refused before reading; and a client that stalls
mid-request is dropped after `read_timeout_s` (the socket's timeout), so it cannot hold a thread.
"""

from collections.abc import Iterator
from collections.abc import Sequence
import contextlib
import hmac
import http.server
import json
import math
import threading
import time

from absl import logging

from eva_jax.rewards import base
from eva_jax.rewards import nonfinite as nonfinite_lib
from eva_jax.rewards import protocols

MAX_BODY_BYTES = 64 << 20
LISTEN_BACKLOG = 128  # socketserver's default of 5 reset 11 of 32 simultaneous new connections
READ_TIMEOUT_S = 60.0  # a stalled client is dropped after this long without a byte


class RewardServer(http.server.ThreadingHTTPServer):
  """A `ThreadingHTTPServer` holding the source it serves."""

  daemon_threads = True
  request_queue_size = LISTEN_BACKLOG

  def __init__(
    self,
    address,
    source,
    *,
    kind: str,
    api_key: str | None,
    max_pairs: int,
    read_timeout_s: float,
    query_template: str = "gemma",
    nonfinite: str = "drop",
  ):
    if nonfinite not in nonfinite_lib.POLICIES:
      raise ValueError(
        f"unknown non-finite reward policy {nonfinite!r}; expected one of {nonfinite_lib.POLICIES}"
      )
    handler = type("Handler", (_Handler,), {"timeout": read_timeout_s})  # per-server socket timeout
    super().__init__(address, handler)
    self.source = source
    self.kind = kind
    self.api_key = api_key
    self.max_pairs = max_pairs
    self.template = protocols.query_template(query_template)
    self.nonfinite = nonfinite
    self.score_lock = threading.Lock()

  @property
  def url(self) -> str:
    host, port = self.server_address[:2]
    return f"http://{host}:{port}/score"


class _Handler(http.server.BaseHTTPRequestHandler):
  server: RewardServer
  protocol_version = "HTTP/1.1"  # keep-alive: the client reuses its connections

  def _send(self, status: int, body: dict) -> None:
    """Answers; an error answer also closes the connection (its request body may be unread)."""
    data = json.dumps(body).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    if status >= 400:
      self.send_header("Connection", "close")
      self.close_connection = True
    self.end_headers()
    self.wfile.write(data)

  def _authorized(self) -> bool:
    if self.server.api_key is None:
      return True
    given = self.headers.get("Authorization", "").encode()
    return hmac.compare_digest(given, f"Bearer {self.server.api_key}".encode())

  def _read_json(self) -> dict:
    """The request's JSON object; ValueError (-> 400) or OverflowError (-> 413) describing the problem."""
    try:
      length = int(self.headers.get("Content-Length", ""))
    except ValueError:
      raise ValueError("a Content-Length header is required") from None
    if length < 0:
      raise ValueError(f"Content-Length must be >= 0, got {length}")
    if length > MAX_BODY_BYTES:
      raise OverflowError(f"body of {length} bytes exceeds {MAX_BODY_BYTES}")
    try:
      body = json.loads(self.rfile.read(length))
    except (ValueError, UnicodeDecodeError):
      raise ValueError("body is not JSON") from None
    if not isinstance(body, dict):
      raise ValueError("body must be a JSON object")
    return body

  def _pairs_of(self, body: dict) -> tuple[Sequence[str], Sequence[str]]:
    """(prompts, responses) of an eva (/score) or OpenRLHF (/get_reward) request; ValueError if malformed."""
    if self.path == "/score":
      prompts, responses = body.get("prompts"), body.get("responses")
      if not isinstance(prompts, list) or not isinstance(responses, list):
        raise ValueError('body must be {"prompts": [...], "responses": [...]}')
    else:
      queries, given = body.get("query"), body.get("prompts")
      if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
        raise ValueError('body must be {"query": [texts], "prompts": [texts] (optional)}')
      if given is not None and (not isinstance(given, list) or len(given) != len(queries)):
        raise ValueError('"prompts" must be a list as long as "query"')
      split = [
        protocols.split_query(self.server.template, q, None if given is None else given[i])
        for i, q in enumerate(queries)
      ]
      prompts, responses = [p for p, _ in split], [r for _, r in split]
    base.check_pairs(prompts, responses)
    if len(prompts) > self.server.max_pairs:
      raise OverflowError(f"{len(prompts)} pairs exceed this server's limit of {self.server.max_pairs}")
    return prompts, responses

  def do_GET(self):
    if self.path != "/health":
      self._send(404, {"error": f"no such path {self.path}; use GET /health or POST /score"})
    else:
      self._send(200, {"status": "ok", "kind": self.server.kind})

  def do_POST(self):
    if self.path not in ("/score", "/get_reward"):
      self._send(404, {"error": f"no such path {self.path}; use POST /score (or /get_reward: OpenRLHF)"})
      return
    if not self._authorized():
      self._send(401, {"error": "missing or wrong bearer token"})
      return
    try:
      prompts, responses = self._pairs_of(self._read_json())
    except OverflowError as e:
      self._send(413, {"error": str(e)})
      return
    except ValueError as e:
      self._send(400, {"error": str(e)})
      return
    start = time.perf_counter()
    try:
      with self.server.score_lock:
        rewards = self.server.source.score(prompts, responses)
    except (
      ValueError
    ) as e:  # The source refused these pairs (empty prompt, too long): asking again won't help.
      self._send(422, {"error": f"cannot score these pairs: {e}"})
      return
    except Exception as e:  # The client gets the cause (and retries a 500); the server keeps serving.
      logging.exception("scoring %d pairs failed", len(prompts))
      self._send(500, {"error": f"scoring failed: {type(e).__name__}: {e}"})
      return
    if self.path == "/score":
      self._send(200, {"rewards": [float(r) if math.isfinite(r) else None for r in rewards]})
    elif problem := self._nonfinite_problem(rewards):
      logging.warning("/get_reward: %s", problem)
      self._send(422, {"error": problem})
      return
    else:
      values = [float(r) for r in rewards]
      self._send(200, {"rewards": values, "scores": values, "extra_logs": {}})
    logging.info("scored %d pairs in %.3fs", len(prompts), time.perf_counter() - start)

  def _nonfinite_problem(self, rewards) -> str:
    """'' when every reward is finite, else why this OpenRLHF batch cannot be answered."""
    report = nonfinite_lib.find_nonfinite(rewards)
    if not report:
      return ""
    shown = ", ".join(f"query {i}: {v}" for i, v in list(zip(report.indices, report.values))[:10])
    more = f", and {len(report.indices) - 10} more" if len(report.indices) > 10 else ""
    return (
      f"{len(report.indices)} of {report.total} rewards are not finite: {shown}{more}; OpenRLHF's protocol "
      f"cannot carry them, so this batch gets none (config.reward.nonfinite='{self.server.nonfinite}')"
    )

  def log_message(self, format, *args):  # the base class's signature
    logging.info("%s %s", self.address_string(), format % args)


@contextlib.contextmanager
def serving_in_thread(server: http.server.HTTPServer) -> Iterator[http.server.HTTPServer]:
  """Serves `server` on a background thread for the duration of the block (notebooks, tests), then closes it."""
  thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
  thread.start()
  try:
    yield server
  finally:
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def make_server(
  source: base.RewardSource,
  *,
  host: str = "127.0.0.1",
  port: int = 0,
  kind: str = "",
  api_key: str | None = None,
  max_pairs: int = 4096,
  read_timeout_s: float = READ_TIMEOUT_S,
  query_template: str = "gemma",
  nonfinite: str = "drop",
) -> RewardServer:
  """A bound, not yet serving, server (port 0 = a free port; see `.url`). Run `serve_forever()`."""
  return RewardServer(
    (host, port),
    source,
    kind=kind,
    api_key=api_key,
    max_pairs=max_pairs,
    read_timeout_s=read_timeout_s,
    query_template=query_template,
    nonfinite=nonfinite,
  )
