"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for the LLM evolver's HTTP backend.

It answers `POST /v1/chat/completions` in the OpenAI JSON format. It reads the meta-prompts our
evolver sends (the given prompt and the method's instruction) and, depending on `mode`:

  rewrite  answers "<given prompt> [<method>]", wrapped in the styles real models use (a label,
           quotes, a code fence, trailing commentary), rotating per request
  garbage  for a given prompt "p<k> ...", answers in the k-th style of GARBAGE (non-JSON body,
           no choices, empty, refusal, identical to the prompt, template echo, cut at the length
           limit, null content) or, for k = len(GARBAGE), a good rewrite
  flaky    per given prompt: first attempt 429, second 500 (both with retry-after-ms: 10), then OK
  slow     sleeps `delay` seconds, then answers like `rewrite`
  status   always answers HTTP `status`, its error message echoing the request's Authorization
           header (as some proxies do)

Every request is recorded (arrival time, Authorization header, JSON body); `max_in_flight` is the
most requests it was serving at once.
"""

from collections.abc import Iterator
import contextlib
import http.server
import json
import threading
import time

import pytest

from eva_jax.creator.evolvers import meta_prompts

GARBAGE = (
  "non_json",
  "no_choices",
  "empty",
  "refusal",
  "identical",
  "leak",
  "truncated",
  "null_content",
  "null_message",
  "legacy_completion",
  "choices_not_a_list",
)
STYLES = (
  "{}",
  'Rewritten prompt: "{}"',
  "```\n{}\n```",
  "Sure! Here is the new prompt:\n**New Prompt:** {}\n\nExplanation: I made it harder.",
)


def given_prompt(meta_prompt: str) -> str:
  body = meta_prompt.split(meta_prompts.GIVEN, 1)[1]
  for end in ("\n\n" + meta_prompts.SECOND_GIVEN, "\n\n" + meta_prompts.ANSWER):
    if end in body:
      return body.split(end, 1)[0]
  raise ValueError("not one of our meta-prompts")


def method_of(meta_prompt: str) -> str:
  return next(m for m, text in meta_prompts.INSTRUCTIONS.items() if text in meta_prompt)


def completion(content, finish_reason: str = "stop") -> dict:
  return {
    "id": "chatcmpl-test",
    "object": "chat.completion",
    "created": 0,
    "model": "test-model",
    "choices": [
      {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
  }


class ScriptedEndpoint:
  garbage_kinds = GARBAGE

  def __init__(self):
    self.lock = threading.Lock()
    self.epoch = 0
    self.reset()

  def reset(self, mode: str = "rewrite", delay: float = 0.0, status: int = 200):
    with self.lock:
      self.epoch += 1  # handlers of an earlier test still sleeping must not touch this test's counts
      self.mode, self.delay, self.status = mode, delay, status
      self.requests: list[dict] = []
      self.attempts: dict[str, int] = {}
      self.in_flight = self.max_in_flight = 0

  def _rewrite(self, meta_prompt: str, index: int) -> tuple[int, dict, bytes]:
    text = f"{given_prompt(meta_prompt)} [{method_of(meta_prompt)}]"
    return 200, {}, json.dumps(completion(STYLES[index % len(STYLES)].format(text))).encode()

  def _garbage(self, meta_prompt: str, index: int) -> tuple[int, dict, bytes]:
    given = given_prompt(meta_prompt)
    kind = int(given.split()[0][1:])
    if kind >= len(GARBAGE):
      return self._rewrite(meta_prompt, 0)
    payload = {
      "no_choices": {"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []},
      "empty": completion("   \n"),
      "refusal": completion("I'm sorry, but I can't help with rewriting this."),
      "identical": completion(f'"{given}"'),
      "leak": completion(meta_prompts.GIVEN + given),
      "truncated": completion(given + " and then", "length"),
      "null_content": completion(None),
      "null_message": {**completion(""), "choices": [{"index": 0, "message": None, "finish_reason": "stop"}]},
      "legacy_completion": {
        **completion(""),
        "choices": [{"index": 0, "text": given, "finish_reason": "stop"}],
      },
      "choices_not_a_list": {**completion(""), "choices": {"0": completion(given)["choices"][0]}},
    }.get(GARBAGE[kind])
    body = b"<html>upstream exploded</html>" if payload is None else json.dumps(payload).encode()
    return 200, {}, body

  def handle(self, body: dict, headers) -> tuple[int, dict, bytes]:
    meta_prompt = body["messages"][0]["content"]
    with self.lock:
      epoch = self.epoch
      index = len(self.requests)
      self.requests.append({"time": time.monotonic(), "auth": headers.get("Authorization"), "body": body})
      key = given_prompt(meta_prompt)
      attempt = self.attempts.get(key, 0)
      self.attempts[key] = attempt + 1
      self.in_flight += 1
      self.max_in_flight = max(self.max_in_flight, self.in_flight)
    try:
      if self.mode == "slow":
        time.sleep(self.delay)
      if self.mode == "status":
        echo = f"nope (you sent {headers.get('Authorization')})"
        return self.status, {}, json.dumps({"error": {"message": echo, "type": "server_error"}}).encode()
      if self.mode == "flaky" and attempt < 2:
        return (
          (429, 500)[attempt],
          {"retry-after-ms": "10"},
          json.dumps({"error": {"message": "busy"}}).encode(),
        )
      if self.mode == "garbage":
        return self._garbage(meta_prompt, index)
      return self._rewrite(meta_prompt, index)
    finally:
      with self.lock:
        if epoch == self.epoch:
          self.in_flight -= 1


class _Handler(http.server.BaseHTTPRequestHandler):
  protocol_version = "HTTP/1.1"

  def do_POST(self):
    length = int(self.headers.get("Content-Length", 0))
    body = json.loads(self.rfile.read(length))
    if self.path != "/v1/chat/completions":
      status, headers, payload = 404, {}, b'{"error": {"message": "not found"}}'
    else:
      status, headers, payload = self.server.endpoint.handle(body, self.headers)
    try:
      self.send_response(status)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(payload)))
      for name, value in headers.items():
        self.send_header(name, value)
      self.end_headers()
      self.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
      pass  # the client gave up (timeout test)

  def log_message(self, format, *args):
    del format, args


@contextlib.contextmanager
def serving() -> Iterator[ScriptedEndpoint]:
  """A ScriptedEndpoint served on 127.0.0.1 (its `base_url` set) until the block ends."""
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
  server.daemon_threads = True
  server.endpoint = ScriptedEndpoint()
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  server.endpoint.base_url = f"http://127.0.0.1:{server.server_address[1]}/v1"
  try:
    yield server.endpoint
  finally:
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def http_endpoint():
  with serving() as endpoint:
    yield endpoint


@pytest.fixture
def endpoint(http_endpoint):
  http_endpoint.reset()
  return http_endpoint
