"""Stub reward servers on 127.0.0.1 that speak vLLM's and OpenRLHF's documented shapes, and nothing else.

Each scores a (prompt, response) pair with `score(prompt, response) -> float` and refuses requests
that are not in its protocol's form (400 with the server's own error shape), so a client that
drifts from the documented request fails the tests instead of being answered.

vLLM (request models of 0.34, `vllm/frontend/entrypoints/pooling/{classify,pooling}/protocol.py`):
POST /classify or /pooling with {"model"?, "messages": [user, assistant], "use_activation"?: bool};
a one-label head's value goes through a sigmoid unless use_activation is false. vLLM ignores (and
logs) fields its request models do not define, such as the `activation` of servers before 0.11;
this stub refuses them, so a client sending one fails. /classify answers {"data": [{"index",
"label", "probs": [x], "num_classes": 1}], ...}; /pooling answers a token head's rows
[[t0], ..., [x]] (`labels` values per token: a 2-class token head has two).
OpenRLHF (`openrlhf.cli.serve_rm` 0.8.3+, client `openrlhf/utils/agent.py` of 0.11): POST /get_reward
{"query": [...], "prompts": [...], "labels": [...]} with Gemma-templated texts, each query ending at
the end-of-turn token the policy stopped on (no newline after it) -> {"rewards", "scores", "extra_logs"}.
"""

from collections.abc import Callable
import http.server
import json
import math
import re
import threading

GEMMA_QUERY = re.compile(
  r"<bos><start_of_turn>user\n(?P<prompt>.*)<end_of_turn>\n<start_of_turn>model\n(?P<response>.*)<end_of_turn>",
  re.DOTALL,
)


class StubServer(http.server.ThreadingHTTPServer):
  daemon_threads = True

  def __init__(self, handler, score: Callable[[str, str], float], model: str = "stub-rm"):
    super().__init__(("127.0.0.1", 0), handler)
    self.score = score
    self.model = model
    self.bodies: list[dict] = []
    self.lock = threading.Lock()

  def base_url(self) -> str:
    return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
  server: StubServer
  protocol_version = "HTTP/1.1"

  def _answer(self, status: int, body) -> None:
    data = json.dumps(body).encode()
    self.send_response(status)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def _body(self):
    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    with self.server.lock:
      self.server.bodies.append(body)
    return body

  def log_message(self, format, *args):
    pass


# Fields of vLLM's chat classification / pooling requests this stub accepts (a subset of 0.34's).
VLLM_FIELDS = frozenset(
  {"model", "messages", "use_activation", "add_special_tokens", "truncate_prompt_tokens", "task"}
)


class VllmHandler(_Handler):
  labels = 1  # values per token of the /pooling head

  def _error(self, message: str) -> None:
    self._answer(400, {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}})

  def do_POST(self):
    body = self._body()
    if self.path not in ("/classify", "/pooling"):
      self._answer(404, {"detail": "Not Found"})
      return
    messages = body.get("messages")
    if "input" in body or not isinstance(messages, list):
      self._error("this stub takes chat requests: one `messages` list")
      return
    if unknown := sorted(set(body) - VLLM_FIELDS):
      self._error(f"fields vLLM 0.34 does not define (it would ignore them): {unknown}")
      return
    if [m.get("role") for m in messages] != ["user", "assistant"] or not all(
      isinstance(m.get("content"), str) for m in messages
    ):
      self._error(f"messages must be a user turn and an assistant turn, got {messages!r}")
      return
    if body.get("model", self.server.model) != self.server.model:
      self._error(f"The model `{body['model']}` does not exist.")
      return
    value = self.server.score(messages[0]["content"], messages[1]["content"])
    if body.get("use_activation", True):
      value = 1 / (1 + math.exp(-value))
    usage = {"prompt_tokens": 27, "total_tokens": 27, "completion_tokens": 0, "prompt_tokens_details": None}
    if self.path == "/classify":
      item = {"index": 0, "label": "LABEL_0", "probs": [value], "num_classes": 1}
    else:  # per-token rows; the last token's is the sequence's
      rows = [[0.25], [-3.0], [value]]
      item = {"index": 0, "object": "pooling", "data": [row * self.labels for row in rows]}
    self._answer(
      200,
      {
        "id": "classify-0",
        "object": "list",
        "created": 0,
        "model": self.server.model,
        "data": [item],
        "usage": usage,
      },
    )


class OpenRLHFHandler(_Handler):
  def do_POST(self):
    body = self._body()
    if self.path != "/get_reward":
      self._answer(404, {"detail": "Not Found"})
      return
    queries, prompts, labels = body.get("query"), body.get("prompts"), body.get("labels")
    if not isinstance(queries, list) or not isinstance(prompts, list) or len(prompts) != len(queries):
      self._answer(422, {"detail": "query and prompts must be lists of equal length"})
      return
    if not isinstance(labels, list) or len(labels) != len(queries):
      self._answer(422, {"detail": "labels must be a list as long as query"})
      return
    rewards = []
    for query, prompt_text in zip(queries, prompts):
      match = GEMMA_QUERY.fullmatch(query)
      if match is None or not query.startswith(prompt_text):
        self._answer(422, {"detail": f"not a Gemma-templated query: {query[:80]!r}"})
        return
      rewards.append(self.server.score(match["prompt"], match["response"]))
    self._answer(200, {"rewards": rewards, "scores": rewards, "extra_logs": {"dummy_scores": rewards}})
