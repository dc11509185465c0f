"""Reward-test fixtures: HTTP servers on 127.0.0.1 (ours, and scripted misbehaving ones) and a tiny reward model."""

import contextlib
import dataclasses
import http.server
import json
import socket
import threading
import time

import jax
import pytest

from eva_jax.rewards import reward_model
from eva_jax.rewards import server as server_lib

running = server_lib.serving_in_thread  # serves a server on a thread for the duration of a block


@contextlib.contextmanager
def serving(source, **kwargs):
  """Our reward server for `source` on a free port; yields it (use `.url`)."""
  with running(server_lib.make_server(source, **kwargs)) as server:
    yield server


@dataclasses.dataclass
class Reply:
  """One scripted answer: status, raw body (bytes, or a JSON-able object), delay and extra headers."""

  status: int = 200
  body: object = None  # None: a correct answer (one reward per pair: the response's length)
  delay_s: float = 0.0
  headers: dict = dataclasses.field(default_factory=dict)
  trickle_s: float = 0.0  # > 0: the body is sent one byte at a time, this long apart
  header_trickle_s: float = 0.0  # > 0: the status line, then a header one byte at a time, this long apart
  header_bytes: int = 60  # bytes of that trickled header


class ScriptedServer(http.server.ThreadingHTTPServer):
  """Answers POSTs from a script (the last reply repeats) and records what it saw."""

  daemon_threads = True

  def __init__(self, script: list[Reply]):
    super().__init__(("127.0.0.1", 0), _ScriptedHandler)
    self.script = list(script)
    self.requests: list[dict] = []  # {"pairs": n, "authorization": header} (vLLM bodies: one pair)
    self.in_flight = 0
    self.max_in_flight = 0
    self.lock = threading.Lock()

  @property
  def url(self) -> str:
    return f"http://127.0.0.1:{self.server_address[1]}/score"

  def next_reply(self, request: dict) -> Reply:
    with self.lock:
      self.requests.append(request)
      self.in_flight += 1
      self.max_in_flight = max(self.max_in_flight, self.in_flight)
      return self.script[min(len(self.requests), len(self.script)) - 1]


class _ScriptedHandler(http.server.BaseHTTPRequestHandler):
  server: ScriptedServer
  protocol_version = "HTTP/1.1"

  def do_POST(self):
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    pairs = len(body["prompts"]) if "prompts" in body else 1
    reply = self.server.next_reply({"pairs": pairs, "authorization": self.headers.get("Authorization")})
    try:
      time.sleep(reply.delay_s)
      if reply.header_trickle_s:
        self._trickle_headers(reply)
        return
      payload = reply.body
      if payload is None:
        payload = {"rewards": [float(len(r)) for r in body["responses"]]}
      if callable(payload):
        payload = payload(self)
      data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
      self.send_response(reply.status)
      for key, value in reply.headers.items():
        self.send_header(key, value)
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      if reply.trickle_s:
        for i in range(len(data)):
          self.wfile.write(data[i : i + 1])
          self.wfile.flush()
          time.sleep(reply.trickle_s)
      else:
        self.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
      pass  # the client gave up (timeout)
    finally:
      with self.server.lock:
        self.server.in_flight -= 1

  def _trickle_headers(self, reply: Reply) -> None:
    """A status line, then one header a byte at a time: each read gets a byte, the headers never end."""
    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
    for _ in range(reply.header_bytes):
      self.wfile.write(b"z")
      self.wfile.flush()
      time.sleep(reply.header_trickle_s)

  def log_message(self, format, *args):
    pass


@pytest.fixture
def scripted():
  """`scripted({"status": 500, ...}, ...)` starts a `ScriptedServer` of `Reply(**each)`; stopped after the test."""
  with contextlib.ExitStack() as stack:
    yield lambda *script: stack.enter_context(running(ScriptedServer([Reply(**r) for r in script])))


@pytest.fixture
def serve():
  """`serve(source, **make_server_kwargs)` starts our reward server on a free port; stopped after the test."""
  with contextlib.ExitStack() as stack:
    yield lambda source, **kwargs: stack.enter_context(serving(source, **kwargs))


@pytest.fixture
def closed_port_url():
  """A URL on 127.0.0.1 where nothing listens."""
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
  return f"http://127.0.0.1:{port}/score"


@pytest.fixture(scope="session")
def reward_params(tiny_model, mesh1):
  """Tiny reward-model params on one device (random backbone and head)."""
  return reward_model.init_params(
    tiny_model, jax.random.key(7), reward_model.shardings_for(tiny_model, mesh1)
  )
