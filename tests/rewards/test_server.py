"""Our reward server: protocol answers, auth, NaN as null, and the `python -m eva_jax.jobs.serve_rewards` command."""

import concurrent.futures
import os
import socket
import subprocess
import sys

import httpx
import jax.numpy as jnp
import numpy as np
import pytest

from eva_jax.rewards import model_source
from eva_jax.rewards import nonfinite
from eva_jax.rewards import remote
from eva_jax.rewards import task_source
from eva_jax.tasks import get_task
from tests.hang_guard import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASK = get_task("addition")


@pytest.fixture
def task_server(serve):
  return serve(task_source.TaskRewardSource(TASK), kind="task", max_pairs=3)


@pytest.mark.parametrize(
  "body,status,error",
  [
    (b"{not json", 400, "body is not JSON"),
    (b'{"prompts": ["a"]}', 400, 'body must be {"prompts": [...], "responses": [...]}'),
    (b'{"prompts": ["a", "b"], "responses": ["x"]}', 400, "2 prompts but 1 responses"),
    (b'{"prompts": ["a", 3], "responses": ["x", "y"]}', 400, "prompt 1 is a int, not a string"),
    (
      b'{"prompts": ["a", "b", "c", "d"], "responses": ["w", "x", "y", "z"]}',
      413,
      "4 pairs exceed this server's limit of 3",
    ),
  ],
)
def test_malformed_requests_get_4xx_with_a_reason(task_server, body, status, error):
  response = httpx.post(task_server.url, content=body, headers={"Content-Type": "application/json"})
  assert (response.status_code, response.json()) == (status, {"error": error})


def test_health_score_and_unknown_paths(task_server):
  base = task_server.url.removesuffix("/score")
  assert httpx.get(f"{base}/health").json() == {"status": "ok", "kind": "task"}
  assert httpx.post(f"{base}/rewards", json={}).status_code == 404
  answer = httpx.post(
    task_server.url, json={"prompts": ["What is 2 + 40?"] * 2, "responses": ["Reversed sum: 24", "?"]}
  )
  assert (answer.status_code, answer.json()) == (200, {"rewards": [1.0, 0.0]})


def test_bearer_token_is_required_when_configured(serve, monkeypatch):
  server = serve(task_source.TaskRewardSource(TASK), api_key="right-token")
  pairs = {"prompts": ["Add 1 and 2."], "responses": ["Reversed sum: 3"]}
  assert httpx.post(server.url, json=pairs).status_code == 401
  assert httpx.post(server.url, json=pairs, headers={"Authorization": "Bearer wrong"}).status_code == 401
  assert httpx.post(server.url, json=pairs, headers={"Authorization": "Bearer right-token"}).json() == {
    "rewards": [1.0]
  }
  monkeypatch.setenv("EVA_TEST_RIGHT", "right-token")
  client = remote.RemoteRewardSource(server.url, api_key_env="EVA_TEST_RIGHT")
  assert client.score(pairs["prompts"], pairs["responses"]).tolist() == [1.0]


def test_model_failures_map_to_422_and_nan_to_null(serve, tiny_model, reward_params, tokenizer, mesh1):
  broken = {**reward_params, "head": {**reward_params["head"], "b": jnp.float32(jnp.nan)}}
  server = serve(
    model_source.ModelRewardSource(tiny_model, broken, tokenizer, mesh1, batch_size=4), kind="model"
  )
  client = remote.RemoteRewardSource(server.url, max_retries=3, backoff_s=0.01)
  with pytest.raises(remote.RewardServerError, match="HTTP 422: cannot score these pairs: prompt 0 is empty"):
    client.score([" "], ["Reversed sum: 1"])
  assert client.stats.requests == 1  # a refusal is not retried
  rewards = client.score(["Add 1 and 2.", "Add 5 and 5."], ["Reversed sum: 3", "Reversed sum: 01"])
  assert np.isnan(rewards).all()
  with pytest.raises(
    nonfinite.NonFiniteRewardError, match=r"2 of 2 rewards are not finite: prompt 7 \(row 0\): nan"
  ):
    nonfinite.apply_policy(rewards, "fail", prompt_ids=[7, 8])


def test_serve_command_end_to_end_with_a_token(tmp_path):
  """The command line on 127.0.0.1 (free port): a client with the token scores, one without is refused."""
  secret = "eva-serve-secret-9d27f3b1c5"
  env = dict(os.environ, EVA_TEST_SERVE_KEY=secret, TF_CPP_MIN_LOG_LEVEL="2", JAX_PLATFORMS="cpu")
  env.pop("XLA_FLAGS", None)
  command = [sys.executable, "-m", "eva_jax.jobs.serve_rewards", "--config=configs/quickstart.py", "--port=0"]
  command += ["--api_key_env=EVA_TEST_SERVE_KEY", "--verbosity=0"]  # verbosity 0: request logs on
  proc = subprocess.Popen(
    command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
  )
  try:
    line = proc.stdout.readline()
    assert line.startswith("eva_jax.jobs.serve_rewards: serving task rewards at http://127.0.0.1:"), line
    url = line.split(" at ")[1].strip()
    served = get_task("addition_lsb_exact")  # the quickstart config's reward task
    prompts = served.seed_prompts(5, 1)
    responses = [served.reference(p) for p in prompts]
    os.environ["EVA_TEST_SERVE_KEY"] = secret
    try:
      client = remote.RemoteRewardSource(url, api_key_env="EVA_TEST_SERVE_KEY", batch_size=2)
      assert client.score(prompts, responses).tolist() == [1.0] * 5
    finally:
      del os.environ["EVA_TEST_SERVE_KEY"]
    with pytest.raises(remote.RewardServerError, match="HTTP 401: missing or wrong bearer token") as err:
      remote.RemoteRewardSource(url).score(prompts, responses)
  finally:
    proc.terminate()
    out, err_text = proc.communicate(timeout=HANG_GUARD_S)
  logs = line + out + err_text
  assert 'POST /score HTTP/1.1" 200' in logs and '" 401' in logs  # requests were logged...
  assert secret not in logs and secret not in str(err.value)  # ...without the token


def _raw(url: str, data: bytes) -> socket.socket:
  """A socket to the server at `url` that has sent `data` (the test reads the answer itself)."""
  host, port = url.removeprefix("http://").split("/")[0].split(":")
  sock = socket.create_connection((host, int(port)))
  sock.settimeout(HANG_GUARD_S)  # a hang guard: each read below is answered (or closed) at once
  sock.sendall(data)
  return sock


def _read_all(sock: socket.socket) -> bytes:
  chunks = []
  while chunk := sock.recv(65536):
    chunks.append(chunk)
  return b"".join(chunks)


def test_an_error_answer_closes_the_connection_and_never_reads_the_body_as_a_request(serve):
  server = serve(task_source.TaskRewardSource(TASK), api_key="right-token")
  smuggled = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"  # the unread body looks like a request
  head = f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {len(smuggled)}\r\n\r\n".encode()
  with _raw(server.url, head + smuggled) as sock:
    answer = _read_all(sock)  # returns once the server closes the connection
  assert answer.startswith(b"HTTP/1.1 401") and b"Connection: close" in answer
  assert answer.count(b"HTTP/1.1") == 1  # the health check inside the body was not served


@pytest.mark.parametrize("length", ["-1", "99999999999"])
def test_a_bad_content_length_is_refused_before_reading(task_server, length):
  head = f"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
  with _raw(task_server.url, head) as sock:  # no body follows: reading it would hang
    answer = _read_all(sock)
  status = b"400" if length == "-1" else b"413"
  assert answer.startswith(b"HTTP/1.1 " + status), answer[:200]


def test_a_stalled_client_is_dropped_after_the_read_timeout(serve):
  server = serve(task_source.TaskRewardSource(TASK), read_timeout_s=0.5)
  with _raw(server.url, b"POST /score HTTP/1.1\r\nContent-") as sock:  # ...and nothing more
    assert _read_all(sock) == b""  # the server closed the connection: its thread is free again


def test_a_burst_of_new_connections_is_served(task_server):
  assert task_server.request_queue_size >= 64
  pairs = {"prompts": ["What is 2 + 40?"], "responses": ["Reversed sum: 24"]}

  def one(_):
    return httpx.post(task_server.url, json=pairs).json()

  with concurrent.futures.ThreadPoolExecutor(64) as pool:
    answers = list(pool.map(one, range(64)))
  assert answers == [{"rewards": [1.0]}] * 64
