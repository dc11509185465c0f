"""The LLM evolver over HTTP, against a real OpenAI-compatible server on 127.0.0.1 (see conftest.py)."""

import collections
import time

import numpy as np
import pytest

from eva_jax.creator import config as creator_config
from eva_jax.creator import filters
from eva_jax.creator import records as records_lib
from eva_jax.creator.evolvers import backends
from eva_jax.creator.evolvers import factory
from eva_jax.creator.evolvers import llm
from eva_jax.creator.evolvers import meta_prompts
from eva_jax.creator.evolvers import protocol


def _llm(endpoint, **overrides) -> creator_config.LLMConfig:
  settings = dict(
    base_url=endpoint.base_url,
    model="rewriter-1",
    api_key_env="",
    requests_per_second=0.0,
    max_retries=2,
    timeout_s=5.0,
    temperature=0.5,
    top_p=0.8,
    max_new_tokens=99,
  )
  return creator_config.LLMConfig(**(settings | overrides))


def _evolver(llm_config, methods=(), num_evolutions=1):
  distribution = protocol.MethodDistribution.create(list(methods), meta_prompts.METHODS)
  return llm.llm_evolver(backends.OpenAIBackend(llm_config, progress=False), distribution, num_evolutions)


PARENTS = [
  "Explain {prompt} in Python's str.format.",
  "$HOME and ${PATH}: %s %d",
  "{}",
  "二と三を足すといくつですか？",
  "Объясни, что такое рекурсия.",
  "long " + "word " * 3000,
]


def test_chained_rewrites_over_http(endpoint, monkeypatch):
  monkeypatch.setenv("EVA_TEST_EVOLVER_KEY", "sekret-123")
  config = _llm(endpoint, api_key_env="EVA_TEST_EVOLVER_KEY")
  evolver = _evolver(config, num_evolutions=3)
  parents = records_lib.seed_records(PARENTS)
  prompt_filter = filters.PromptFilter(creator_config.FilterConfig(), PARENTS)
  out = evolver.evolve(parents, generation=2, rng=np.random.default_rng(0), accept=prompt_filter.check)
  # The server answers "<given prompt> [<method>]" inside labels, quotes, fences and commentary.
  assert out.requests == 18 and not out.drops and not prompt_filter.counts
  assert len(out.children) == 18 and len(endpoint.requests) == 18
  by_id = {r.prompt_id: r for r in parents + out.children}
  for child in out.children:
    assert child.text == f"{by_id[child.parent_id].text} [{child.method}]"
    assert child.generation == 2 and child.source == "evolved"
    assert child.root_id == by_id[child.parent_id].root_id

  def depth(record):
    return 1 + depth(by_id[record.parent_id]) if record.parent_id else 0

  assert collections.Counter(depth(c) for c in out.children) == {1: 6, 2: 6, 3: 6}
  assert all(c.text.count(" [") == depth(c) for c in out.children)
  methods = collections.Counter(c.method for c in out.children)
  assert set(methods) <= set(meta_prompts.METHODS) and len(methods) >= 5
  request = endpoint.requests[0]
  assert request["auth"] == "Bearer sekret-123"
  body = request["body"]
  assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == (
    "rewriter-1",
    0.5,
    0.8,
    99,
  )
  assert body["messages"][0]["role"] == "user"


def test_garbage_answers_are_counted_and_dropped(endpoint):
  endpoint.reset("garbage")
  parents = records_lib.seed_records(
    [f"p{k} Write a haiku about rain." for k in range(len(endpoint.garbage_kinds) + 1)]
  )
  out = _evolver(_llm(endpoint), methods=[("deepen", 1.0)]).evolve(
    parents, generation=1, rng=np.random.default_rng(0)
  )
  # bad_response: a 200 whose body is not JSON
  expected = [
    "bad_response",
    "no_choices",
    "empty",
    "refusal",
    "identical",
    "template_leak",
    "truncated",
    "no_content",
    "no_message",  # "message": null
    "no_message",  # a legacy completions body: {"text": ...} instead of a message
    "bad_response",  # "choices" is not a list
  ]
  assert out.drops == collections.Counter(expected) and out.retries == 0
  assert [c.text for c in out.children] == [
    f"p{len(endpoint.garbage_kinds)} Write a haiku about rain. [deepen]"
  ]


def test_429_and_500_are_retried(endpoint):
  endpoint.reset("flaky")
  parents = records_lib.seed_records(["Name three rivers.", "Name three lakes."])
  out = _evolver(_llm(endpoint, max_retries=2), methods=[("concretize", 1.0)]).evolve(
    parents, generation=1, rng=np.random.default_rng(0)
  )
  assert [c.text for c in out.children] == [
    f"{p} [concretize]" for p in ("Name three rivers.", "Name three lakes.")
  ]
  assert sorted(endpoint.attempts.values()) == [3, 3]  # 429, 500, then the answer
  assert out.retries == 4  # the client's retries are counted (creator/retries)


def test_retries_run_out(endpoint):
  endpoint.reset("flaky")
  evolver = _evolver(_llm(endpoint, max_retries=1), methods=[("concretize", 1.0)])
  out = evolver.evolve(
    records_lib.seed_records(["Name a river."]), generation=1, rng=np.random.default_rng(0)
  )
  assert out.drops == collections.Counter(http_500=1) and endpoint.attempts == {"Name a river.": 2}


@pytest.mark.parametrize("status,attempts", [(400, 1), (503, 3)])
def test_http_errors(endpoint, status, attempts):
  endpoint.reset("status", status=status)
  out = _evolver(_llm(endpoint, max_retries=2)).evolve(
    records_lib.seed_records(["Name a river."]), generation=1, rng=np.random.default_rng(0)
  )
  assert out.drops == collections.Counter({f"http_{status}": 1})
  assert endpoint.attempts == {"Name a river.": attempts}  # client errors are not retried
  assert out.retries == attempts - 1


def test_error_text_is_logged_without_the_key(endpoint, monkeypatch):
  secret = "sk-evolver-test-5e1d"
  monkeypatch.setenv("EVA_TEST_EVOLVER_KEY", secret)
  endpoint.reset("status", status=400)  # the server echoes the Authorization header in its error
  config = _llm(endpoint, api_key_env="EVA_TEST_EVOLVER_KEY", max_retries=0)
  lines = []  # what reaches the logger (log_every_n would skip it after other tests' failures)
  monkeypatch.setattr(backends.logging, "log_every_n", lambda level, msg, n, *args: lines.append(msg % args))
  out = _evolver(config).evolve(
    records_lib.seed_records(["Name a lake."]), generation=1, rng=np.random.default_rng(0)
  )
  assert out.drops == collections.Counter(http_400=1)
  logged = "\n".join(lines)
  assert "evolver request failed (http_400)" in logged and "you sent Bearer" in logged
  assert secret not in logged


def test_timeouts_are_retried_then_dropped(endpoint):
  endpoint.reset("slow", delay=1.0)
  config = _llm(endpoint, timeout_s=0.2, max_retries=1)
  start = time.monotonic()
  out = _evolver(config).evolve(
    records_lib.seed_records(["A.", "B."]), generation=1, rng=np.random.default_rng(0)
  )
  assert out.drops == collections.Counter(timeout=2) and not out.children
  assert endpoint.attempts == {"A.": 2, "B.": 2}
  assert time.monotonic() - start < 3.0


def test_concurrency_is_bounded_and_used(endpoint):
  endpoint.reset("slow", delay=0.4)
  backend = backends.OpenAIBackend(_llm(endpoint, max_concurrency=4), progress=False)
  prompts = [meta_prompts.render("deepen", f"Question {i}.") for i in range(8)]
  start = time.monotonic()
  out = backend.complete(prompts, np.random.default_rng(0))
  elapsed = time.monotonic() - start
  assert [meta_prompts.parse_rewrite(c.text, "")[0] for c in out] == [
    f"Question {i}. [deepen]" for i in range(8)
  ]
  assert endpoint.max_in_flight == 4
  assert 0.8 <= elapsed < 2.4  # two waves of four, not eight in a row (3.2 s)


def test_rate_limit_spaces_request_starts(endpoint):
  backend = backends.OpenAIBackend(
    _llm(endpoint, max_concurrency=8, requests_per_second=20.0), progress=False
  )
  prompts = [meta_prompts.render("deepen", f"Question {i}.") for i in range(8)]
  backend.complete(prompts, np.random.default_rng(0))
  arrivals = np.sort([r["time"] for r in endpoint.requests])
  assert len(arrivals) == 8
  # Started 1/20 s apart: 0.35 s from first to last (unpaced, eight threads start within milliseconds).
  assert arrivals[-1] - arrivals[0] >= 0.3 and np.diff(arrivals).min() > 0.01


def test_rate_limiter_alone():
  limiter = backends.RateLimiter(50.0)
  start = time.monotonic()
  for _ in range(11):
    limiter.wait()
  assert 0.19 <= time.monotonic() - start < 0.6
  unlimited = backends.RateLimiter(0.0)
  start = time.monotonic()
  for _ in range(1000):
    unlimited.wait()
  assert time.monotonic() - start < 0.1


def test_missing_key_names_the_variable(endpoint, monkeypatch):
  monkeypatch.delenv("EVA_TEST_MISSING_KEY", raising=False)
  with pytest.raises(ValueError, match="EVA_TEST_MISSING_KEY"):
    backends.OpenAIBackend(_llm(endpoint, api_key_env="EVA_TEST_MISSING_KEY"))


def test_factory_builds_the_http_evolver_from_config(endpoint):
  config = creator_config.CreatorConfig(
    evolver="llm", methods=(("mix", 1.0),), num_evolutions=1, llm=_llm(endpoint)
  )
  evolver = factory.build_evolver(config)
  parents = records_lib.seed_records(["Cook rice.", "Fix a bike."])
  out = evolver.evolve(parents, generation=1, rng=np.random.default_rng(0))
  assert [c.text for c in out.children] == ["Cook rice. [mix]", "Fix a bike. [mix]"]
  metas = [r["body"]["messages"][0]["content"] for r in endpoint.requests]
  assert all(meta_prompts.SECOND_GIVEN in m for m in metas)  # each mixed with the other chain's prompt
  assert any(meta_prompts.SECOND_GIVEN + "Fix a bike." in m for m in metas)
  lonely = evolver.evolve(parents[:1], generation=1, rng=np.random.default_rng(0))
  assert lonely.drops == collections.Counter(no_partner=1)
