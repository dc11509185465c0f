"""An endpoint's bearer token comes from the environment and never shows up in errors, logs, stats, reprs or configs."""

import dataclasses
import logging

import pytest

from configs import quickstart
from eva_jax.rewards import config as reward_config
from eva_jax.rewards import credentials
from eva_jax.rewards import factory
from eva_jax.rewards import remote
from eva_jax.rewards import task_source
from eva_jax.tasks import get_task

SECRET = "sk-eva-test-5e3b9f0d7a41c2"
TASK = get_task("addition")
PROMPTS = TASK.seed_prompts(4, 2)
RESPONSES = [TASK.reference(p) for p in PROMPTS]


def _config(url: str):
  config = quickstart.get_config()
  config.reward.kind = "remote"
  config.reward.url = url
  config.reward.api_key_env = "EVA_TEST_REWARD_KEY"
  config.reward.max_retries = 1
  config.reward.backoff_s = 0.01
  return config


def test_token_never_leaks(monkeypatch, caplog, capfd, serve, scripted, closed_port_url):
  monkeypatch.setenv("EVA_TEST_REWARD_KEY", SECRET)
  caplog.set_level(logging.DEBUG)  # everything httpx, httpcore and our server log
  seen = []

  config = _config(serve(task_source.TaskRewardSource(TASK), api_key=SECRET).url)
  cfg = reward_config.parse(config)
  client = factory.make_reward_source(cfg, progress=True)
  assert client.score(PROMPTS, RESPONSES).tolist() == [1.0] * 4  # the server accepted the token
  seen += [
    repr(cfg),
    repr(client),
    str(client.stats),
    str(dataclasses.asdict(client.stats)),
    config.to_json(),
  ]
  assert "EVA_TEST_REWARD_KEY" in repr(client) and "EVA_TEST_REWARD_KEY" in config.to_json()

  # A server that echoes the Authorization header back in its error message.
  echo = scripted(
    {"status": 500, "body": lambda handler: {"error": f"bad auth: {handler.headers['Authorization']}"}}
  )
  errors = []
  for url in (echo.url, closed_port_url):
    client = factory.make_reward_source(reward_config.parse(_config(url)))
    with pytest.raises(remote.RewardServerError) as err:
      client.score(PROMPTS, RESPONSES)
    errors.append(str(err.value))
    seen += [str(err.value), repr(err.value), repr(client), str(client.stats)]
  assert echo.requests[0]["authorization"] == f"Bearer {SECRET}"  # the echo did carry the token...
  assert "HTTP 500: bad auth: Bearer <redacted>" in errors[0]  # ...and the message shows it scrubbed
  assert "connection failed (ConnectError" in errors[1]

  out, err = capfd.readouterr()
  seen += [out, err, caplog.text]
  assert "HTTP Request: POST" in caplog.text and "remote rewards" in err  # logs and progress were captured
  for text in seen:
    assert SECRET not in text


def test_scrub_and_read_api_key(monkeypatch):
  assert credentials.scrub(f"x {SECRET} y {SECRET}", SECRET) == "x <redacted> y <redacted>"
  assert credentials.scrub("no secret", None) == "no secret"
  assert credentials.read_api_key("") is None
  monkeypatch.setenv("EVA_TEST_REWARD_KEY", SECRET)
  assert credentials.read_api_key("EVA_TEST_REWARD_KEY") == SECRET
  with pytest.raises(ValueError, match="--api_key_env: must be the NAME") as err:
    credentials.read_api_key(SECRET.replace("-", " "), "--api_key_env")
  assert SECRET.replace("-", " ") not in str(err.value)


@pytest.mark.parametrize(
  "key", ["sk_live_4f9a77c1e0b2d3a1", "rk_test_51HqLyjWDarjtT1zd", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"]
)
def test_a_key_that_looks_like_a_variable_name_is_refused_without_echo(monkeypatch, key):
  """Stripe/GitHub-style keys are letters, digits and '_', like a variable name: their random part gives them away."""
  monkeypatch.delenv(key, raising=False)
  for field in ("config.reward.api_key_env", "--api_key_env"):
    with pytest.raises(ValueError, match=f"{field}: must be the NAME") as err:
      credentials.read_api_key(key, field)
    assert key not in str(err.value) and key[-8:] not in str(err.value)
  config = _config("http://127.0.0.1:1/score")
  config.reward.api_key_env = key
  with pytest.raises(ValueError, match="config.reward.api_key_env: must be the NAME") as err:
    reward_config.parse(config)
  assert key not in str(err.value)


@pytest.mark.parametrize(
  "name", ["EVA_RM_KEY", "HF_TOKEN", "OPENAI_API_KEY", "RM_KEY_20240101", "sk_token", "KEY2"]
)
def test_ordinary_variable_names_are_still_names(name):
  assert credentials.is_env_name(name)
