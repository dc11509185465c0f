"""The remote reward client against real HTTP servers on 127.0.0.1: ours, and scripted misbehaving ones."""

import time

import numpy as np
import pytest

from eva_jax.rewards import config as reward_config
from eva_jax.rewards import deadline_http
from eva_jax.rewards import factory
from eva_jax.rewards import model_source
from eva_jax.rewards import nonfinite
from eva_jax.rewards import remote
from eva_jax.rewards import task_source
from eva_jax.tasks import get_task

TASK = get_task("addition")
PROMPTS = TASK.seed_prompts(10, 5)
RESPONSES = [TASK.reference(p) if i % 3 else "Reversed sum: 12" for i, p in enumerate(PROMPTS)]


def reply(status=200, body=None, delay_s=0.0, headers=None, trickle_s=0.0, header_trickle_s=0.0) -> dict:
  """A scripted server's answer (body None: one correct reward per pair, the response's length)."""
  return {
    "status": status,
    "body": body,
    "delay_s": delay_s,
    "headers": headers or {},
    "trickle_s": trickle_s,
    "header_trickle_s": header_trickle_s,
  }


def _client(url, **kwargs):
  settings = {"batch_size": 4, "max_concurrency": 2, "timeout_s": 5.0, "max_retries": 2, "backoff_s": 0.01}
  return remote.RemoteRewardSource(url, **{**settings, **kwargs})


def test_remote_scores_equal_the_served_task_source(serve):
  task = task_source.TaskRewardSource(TASK)
  server = serve(task, kind="task")
  cfg = reward_config.RewardConfig(kind="remote", url=server.url, batch_size=3, max_concurrency=2)
  client = factory.make_reward_source(cfg)
  rewards = client.score(PROMPTS, RESPONSES)
  client.close()
  np.testing.assert_array_equal(rewards, task.score(PROMPTS, RESPONSES))
  assert rewards[0] < 1.0 and rewards[1] == 1.0
  assert (client.stats.requests, client.stats.retries, client.stats.pairs) == (4, 0, 10)


def test_remote_scores_equal_the_served_reward_model(serve, tiny_model, reward_params, tokenizer, mesh1):
  model = model_source.ModelRewardSource(tiny_model, reward_params, tokenizer, mesh1, batch_size=8)
  # Batched as the client will send them, so the very same programs run.
  direct = np.concatenate([model.score(PROMPTS[:5], RESPONSES[:5]), model.score(PROMPTS[5:], RESPONSES[5:])])
  client = _client(serve(model, kind="model").url, batch_size=5)
  # float32 -> JSON -> float32 is exact.
  np.testing.assert_array_equal(client.score(PROMPTS, RESPONSES), direct)
  client.close()


def test_5xx_and_429_are_retried_then_succeed(scripted):
  server = scripted(
    reply(500, {"error": "warming up"}), reply(503, b"busy"), reply(429, {}, headers={"Retry-After": "0"}), {}
  )
  client = _client(server.url, batch_size=10, max_retries=3)
  rewards = client.score(PROMPTS, RESPONSES)
  np.testing.assert_array_equal(rewards, np.float32([len(r) for r in RESPONSES]))
  assert len(server.requests) == 4 and (client.stats.requests, client.stats.retries) == (4, 3)


def test_server_that_stays_down_gives_a_clear_error_after_the_retries(scripted):
  server = scripted(reply(500, {"error": "CUDA out of memory"}))
  client = _client(server.url, batch_size=10, max_retries=2, backoff_s=0.05)
  start = time.perf_counter()
  with pytest.raises(
    remote.RewardServerError, match=r"\(pairs 0..9\): failed 3 attempts; last: HTTP 500: CUDA out of memory"
  ):
    client.score(PROMPTS, RESPONSES)
  assert len(server.requests) == 3
  assert time.perf_counter() - start >= 0.05 * (1 + 2) / 2  # backoff 0.05 then 0.1, jitter >= half


def test_unreachable_server(closed_port_url):
  client = _client(closed_port_url, max_retries=1)
  with pytest.raises(
    remote.RewardServerError,
    match=rf"reward server {closed_port_url} .*failed 2 attempts; last: connection failed \(ConnectError",
  ):
    client.score(PROMPTS, RESPONSES)
  assert client.stats.retries >= 1 and client.stats.pairs == 0


def test_slow_server_times_out(scripted):
  server = scripted(reply(delay_s=1.0))
  client = _client(server.url, batch_size=10, timeout_s=0.2, max_retries=1)
  with pytest.raises(remote.RewardServerError, match="failed 2 attempts; last: timed out after 0.2s"):
    client.score(PROMPTS, RESPONSES)
  assert len(server.requests) == 2


def test_timeout_bounds_the_whole_answer_not_each_read(scripted):
  """A server trickling its answer a byte every 0.1 s never trips a per-read timeout of 0.5 s."""
  server = scripted(reply(trickle_s=0.1))
  client = _client(server.url, batch_size=10, timeout_s=0.5, max_retries=0)
  with pytest.raises(remote.RewardServerError, match="timed out after 0.5s"):
    client.score(PROMPTS, RESPONSES)


def test_timeout_bounds_the_status_line_and_headers(scripted):
  """Headers trickled a byte every 0.5 s for 30 s: each read gets a byte, yet the request must end near 1 s."""
  server = scripted(reply(header_trickle_s=0.5))
  client = _client(server.url, batch_size=10, timeout_s=1.0, max_retries=0)
  start = time.perf_counter()
  with pytest.raises(remote.RewardServerError, match=r"failed 1 attempts; last: timed out after 1.0s"):
    client.score(PROMPTS, RESPONSES)
  assert time.perf_counter() - start < 15.0


HUGE = b"1" + b"0" * 400  # an integer JSON allows and no float holds


@pytest.mark.parametrize(
  "protocol,body",
  [
    ("eva", b'{"rewards": [' + HUGE + b"]}"),
    ("openrlhf", b'{"rewards": [' + HUGE + b'], "scores": [0.5], "extra_logs": {}}'),
    ("vllm", b'{"data": [{"index": 0, "label": "LABEL_0", "probs": [' + HUGE + b'], "num_classes": 1}]}'),
  ],
)
def test_a_reward_no_float_holds_fails_naming_the_server(scripted, protocol, body):
  server = scripted(reply(200, body))
  client = _client(server.url, protocol=protocol)
  with pytest.raises(
    remote.RewardServerError, match=rf"reward server {server.url} \(pairs 0..0\): .*401 digits"
  ):
    client.score(PROMPTS[:1], RESPONSES[:1])
  assert len(server.requests) == 1  # not retried


@pytest.mark.parametrize(
  "reply,message",
  [
    (reply(200, b"<html>oops</html>"), "answered non-JSON: '<html>oops</html>'"),
    (reply(200, {"scores": [1.0]}), 'answered JSON without a "rewards" list'),
    (reply(200, {"rewards": [0.5, 0.25]}), "answered 2 rewards for 10 pairs"),
    (reply(200, {"rewards": [0.5] * 9 + ["high"]}), "reward 9 is 'high', not a number or null"),
    (reply(200, {"rewards": [0.5] * 9 + [True]}), "reward 9 is True, not a number or null"),
    (reply(400, {"error": "prompts must be strings"}), "HTTP 400: prompts must be strings"),
    (reply(401, {"error": "missing or wrong bearer token"}), "HTTP 401: missing or wrong bearer token"),
  ],
)
def test_garbage_and_client_errors_fail_at_once(scripted, reply, message):
  server = scripted(reply)
  client = _client(server.url, batch_size=10)
  with pytest.raises(remote.RewardServerError, match=message):
    client.score(PROMPTS, RESPONSES)
  assert len(server.requests) == 1  # not retried: asking again would get the same answer


def test_batches_run_concurrently_up_to_the_limit_and_keep_their_order(scripted):
  server = scripted(reply(delay_s=0.3))
  client = _client(server.url, batch_size=1, max_concurrency=4)
  start = time.perf_counter()
  rewards = client.score(PROMPTS[:8], RESPONSES[:8])
  elapsed = time.perf_counter() - start
  np.testing.assert_array_equal(rewards, np.float32([len(r) for r in RESPONSES[:8]]))
  assert [r["pairs"] for r in server.requests] == [1] * 8
  assert 2 <= server.max_in_flight <= 4
  assert elapsed < 8 * 0.3  # not one at a time


def test_null_rewards_become_nan_for_the_nonfinite_policy(scripted):
  server = scripted(reply(200, {"rewards": [0.5, None, 1.5]}))
  client = _client(server.url)
  rewards = client.score(PROMPTS[:3], RESPONSES[:3])
  assert rewards[0] == 0.5 and np.isnan(rewards[1]) and rewards[2] == 1.5
  keep, report = nonfinite.apply_policy(rewards, "drop", prompt_ids=["a", "b", "c"])
  assert keep.tolist() == [True, False, True] and report.prompt_ids == ("b",)
  with pytest.raises(nonfinite.NonFiniteRewardError, match=r"prompt b \(row 1\): nan"):
    nonfinite.score_with_policy(client, PROMPTS[:3], RESPONSES[:3], "fail", prompt_ids=["a", "b", "c"])


def test_missing_token_variable_is_named(monkeypatch):
  monkeypatch.delenv("EVA_TEST_UNSET_KEY", raising=False)
  with pytest.raises(
    ValueError, match="config.reward.api_key_env: environment variable EVA_TEST_UNSET_KEY is not set"
  ):
    remote.RemoteRewardSource("http://127.0.0.1:1/score", api_key_env="EVA_TEST_UNSET_KEY")


def test_a_proxy_named_by_the_environment_is_still_used(scripted, monkeypatch):
  """The deadline transport is for direct connections; HTTP_PROXY keeps httpx's own, which honours it."""
  proxy = scripted(reply())  # answers whatever it is asked, as a forwarding proxy would
  monkeypatch.setenv("HTTP_PROXY", proxy.url.removesuffix("/score"))
  monkeypatch.setenv("NO_PROXY", "direct.invalid")
  client = _client("http://reward-host.invalid/score")  # resolvable only by way of the proxy
  np.testing.assert_array_equal(client.score(PROMPTS[:2], RESPONSES[:2]), [len(r) for r in RESPONSES[:2]])
  assert len(proxy.requests) == 1
  assert deadline_http.uses_env_proxy("http://reward-host.invalid/score")
  assert not deadline_http.uses_env_proxy("http://direct.invalid/score")
  assert not deadline_http.uses_env_proxy("https://reward-host.invalid/score")  # no HTTPS_PROXY
