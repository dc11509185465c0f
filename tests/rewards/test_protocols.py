"""vLLM and OpenRLHF reward protocols: the real client against stub servers of the documented shapes,
our server answering OpenRLHF's shape, and a tiny eva round scored through each."""

import contextlib
import math

import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from configs import quickstart
from eva_jax import config as config_lib
from eva_jax.loop import runner
from eva_jax.rewards import config as reward_config
from eva_jax.rewards import protocols
from eva_jax.rewards import remote
from eva_jax.rewards import server as server_lib
from eva_jax.rewards import task_source
from eva_jax.tasks import get_task
from tests.rewards import protocol_stubs

TASK = get_task("addition_lsb")
SOURCE = task_source.TaskRewardSource(TASK)
PROMPTS = TASK.seed_prompts(7, 3)
RESPONSES = [TASK.reference(p) if i % 2 else "Reversed sum: 9" for i, p in enumerate(PROMPTS)]
EXPECTED = SOURCE.score(PROMPTS, RESPONSES)


def _score(prompt: str, response: str) -> float:
  return float(SOURCE.score([prompt], [response])[0])


@pytest.fixture
def stub():
  """`stub(handler)` serves a protocol stub scoring with the task's graded reward."""
  with contextlib.ExitStack() as stack:
    yield lambda handler: stack.enter_context(
      server_lib.serving_in_thread(protocol_stubs.StubServer(handler, _score))
    )


def _client(url, **kwargs):
  settings = {"batch_size": 3, "max_concurrency": 3, "timeout_s": 30.0, "max_retries": 1, "backoff_s": 0.01}
  return remote.RemoteRewardSource(url, **{**settings, **kwargs})


@pytest.mark.parametrize("path", ["/classify", "/pooling"])
def test_vllm_client_reads_raw_reward_one_conversation_per_request(stub, path):
  server = stub(protocol_stubs.VllmHandler)
  client = _client(server.base_url() + path, protocol="vllm", model="stub-rm")
  rewards = client.score(PROMPTS, RESPONSES)
  client.close()
  np.testing.assert_allclose(rewards, EXPECTED, rtol=0, atol=1e-7)  # raw values: no sigmoid applied
  assert len(server.bodies) == len(PROMPTS) and client.stats.pairs == len(PROMPTS)
  assert sorted(b["messages"][0]["content"] for b in server.bodies) == sorted(PROMPTS)
  assert all(b["model"] == "stub-rm" and b["use_activation"] is False for b in server.bodies)
  assert not any("activation" in b for b in server.bodies)  # gone from vLLM's request models


def test_vllm_pooling_refuses_several_values_per_token(stub):
  """A 2-class token head (a process reward model's rows) is refused, as /classify refuses num_classes 2."""

  class TwoClassTokenHead(protocol_stubs.VllmHandler):
    labels = 2

  server = stub(TwoClassTokenHead)
  client = _client(server.base_url() + "/pooling", protocol="vllm", model="stub-rm")
  with pytest.raises(remote.RewardServerError, match=r"2 values per token; a reward model has one label"):
    client.score(PROMPTS[:1], RESPONSES[:1])
  client.close()


def test_vllm_errors_carry_the_servers_message(stub):
  server = stub(protocol_stubs.VllmHandler)
  client = _client(server.base_url() + "/classify", protocol="vllm", model="other-rm")
  with pytest.raises(remote.RewardServerError, match=r"HTTP 400: The model `other-rm` does not exist"):
    client.score(PROMPTS[:1], RESPONSES[:1])
  assert len(server.bodies) == 1  # a 400 is not retried


def test_openrlhf_client_sends_templated_batches(stub):
  server = stub(protocol_stubs.OpenRLHFHandler)
  client = _client(server.base_url() + "/get_reward", protocol="openrlhf")
  rewards = client.score(PROMPTS, RESPONSES)
  client.close()
  np.testing.assert_array_equal(rewards, EXPECTED)
  assert sorted(len(b["query"]) for b in server.bodies) == [1, 3, 3]
  first = min(
    server.bodies, key=lambda b: PROMPTS.index(protocol_stubs.GEMMA_QUERY.fullmatch(b["query"][0])["prompt"])
  )
  assert first["prompts"][0] == f"<bos><start_of_turn>user\n{PROMPTS[0]}<end_of_turn>\n<start_of_turn>model\n"
  assert first["labels"] == [None] * len(first["query"])


def _post(url, body):
  import httpx

  return httpx.post(url, json=body, timeout=30)


def test_our_server_answers_openrlhf_requests(serve):
  server = serve(SOURCE, kind="task")
  url = server.url.replace("/score", "/get_reward")
  template = protocols.query_template("gemma")
  queries = [template.query(p, r) for p, r in zip(PROMPTS, RESPONSES)]
  # As OpenRLHF's trainer sends it (prompts, labels); as its clients before 0.6 did (query only);
  # and a response cut at the length limit (no closing <end_of_turn>).
  answer = _post(
    url, {"query": queries, "prompts": [template.prompt_text(p) for p in PROMPTS], "labels": [None] * 7}
  )
  assert answer.status_code == 200
  body = answer.json()
  np.testing.assert_array_equal(np.float32(body["rewards"]), EXPECTED)
  assert body["scores"] == body["rewards"] and body["extra_logs"] == {}
  old = _post(url, {"query": queries}).json()["rewards"]
  assert old == body["rewards"]
  cut = _post(url, {"query": [template.prompt_text(PROMPTS[1]) + RESPONSES[1]]}).json()["rewards"]
  assert cut == [body["rewards"][1]]


END_OF_TURN = {"gemma": "<end_of_turn>", "llama3": "<|eot_id|>", "chatml": "<|im_end|>"}


@pytest.mark.parametrize("name", sorted(END_OF_TURN))
def test_queries_end_at_the_end_of_turn_token(name):
  """As OpenRLHF's trainer decodes prompt + generated ids: the last token is the stop token, no newline after it."""
  template = protocols.query_template(name)
  assert template.query("p", "r") == template.prompt_text("p") + "r" + END_OF_TURN[name]


def test_our_server_strips_every_stop_token(serve):
  """A policy may stop on Gemma's <eos> rather than <end_of_turn>; older clients sent a newline after it."""
  url = serve(SOURCE, kind="task").url.replace("/score", "/get_reward")
  template = protocols.query_template("gemma")
  for ending in ("<eos>", "<end_of_turn><eos>", "<end_of_turn>\n", "<eos>\n", ""):
    queries = [template.prompt_text(p) + r + ending for p, r in zip(PROMPTS, RESPONSES)]
    answer = _post(url, {"query": queries, "prompts": [template.prompt_text(p) for p in PROMPTS]})
    assert answer.status_code == 200, (ending, answer.text)
    np.testing.assert_array_equal(np.float32(answer.json()["rewards"]), EXPECTED, err_msg=repr(ending))


class Recording(task_source.TaskRewardSource):
  """The task's reward, remembering the (prompt, response) pairs it was given."""

  def __init__(self, task):
    super().__init__(task)
    self.pairs = []

  def score(self, prompts, responses):
    self.pairs += list(zip(prompts, responses))
    return super().score(prompts, responses)


def test_our_server_scores_a_prompt_openrlhf_cut_from_the_left(serve):
  """OpenRLHF keeps the last prompt tokens of an over-long prompt but sends the whole prompt text."""
  source = Recording(TASK)
  url = serve(source, kind="task").url.replace("/score", "/get_reward")
  template = protocols.query_template("gemma")
  prompt = "x<end_of_turn>\n<start_of_turn>model\ny. " + PROMPTS[0]  # the marker's text inside a prompt
  full = template.prompt_text(prompt)
  cuts = {
    len("<bos>"): prompt,  # only the BOS token dropped
    len("<bos><start_of_turn>user\n"): prompt,
    full.index("y. "): prompt[prompt.index("y. ") :],
    full.index(PROMPTS[0]) + 4: PROMPTS[0][4:],
    full.index("<start_of_turn>model\ny"): "<start_of_turn>model\ny. " + PROMPTS[0],
  }
  for cut, kept in cuts.items():
    query = "\ufffd" + template.query(prompt, RESPONSES[1])[cut:]  # a split character decodes to U+FFFD
    answer = _post(url, {"query": [query], "prompts": [full], "labels": [None]})
    assert answer.status_code == 200, (cut, answer.text)
    assert source.pairs[-1] == (kept, RESPONSES[1]), cut


def test_our_server_refuses_malformed_openrlhf_requests(serve):
  url = serve(SOURCE, kind="task").url.replace("/score", "/get_reward")
  bad = [
    ({"prompts": ["x"]}, '"query": [texts]'),
    ({"query": ["no template here"]}, "has no"),
    (
      {"query": ["<bos><start_of_turn>user\nq<end_of_turn>\n<start_of_turn>model\nr"], "prompts": ["other"]},
      "neither starts with its prompt nor with the end of it",
    ),
    ({"query": ["a", "b"], "prompts": ["a"]}, "as long as"),
  ]
  for body, message in bad:
    answer = _post(url, body)
    assert answer.status_code == 400 and message in answer.json()["error"], (body, answer.text)


def test_our_server_and_our_openrlhf_client_agree(serve):
  server = serve(SOURCE, kind="task", query_template="llama3")
  client = _client(server.url.replace("/score", "/get_reward"), protocol="openrlhf", query_template="llama3")
  rewards = client.score(PROMPTS, RESPONSES)
  client.close()
  np.testing.assert_array_equal(rewards, EXPECTED)


class HalfNaN(task_source.TaskRewardSource):
  """NaN for the wrong answers (the even pairs)."""

  def score(self, prompts, responses):
    out = super().score(prompts, responses)
    out[[r == RESPONSES[0] for r in responses]] = np.nan
    return out


@pytest.mark.parametrize("policy", ["drop", "fail"])
def test_our_server_never_sends_openrlhf_a_nan(serve, policy):
  """OpenRLHF's protocol has no null, and its client parses NaN: a batch with one gets an error instead."""
  server = serve(HalfNaN(TASK), kind="task", nonfinite=policy)
  template = protocols.query_template("gemma")
  body = {"query": [template.query(p, r) for p, r in zip(PROMPTS, RESPONSES)]}
  answer = _post(server.url.replace("/score", "/get_reward"), body)
  assert answer.status_code == 422 and "NaN" not in answer.text
  assert "4 of 7 rewards are not finite: query 0: nan, query 2: nan" in answer.json()["error"]
  assert f"config.reward.nonfinite='{policy}'" in answer.json()["error"]
  finite = _post(server.url.replace("/score", "/get_reward"), {"query": body["query"][1::2]})
  assert finite.status_code == 200 and finite.json()["rewards"] == EXPECTED[1::2].tolist()
  eva = _post(server.url, {"prompts": PROMPTS, "responses": RESPONSES}).json()["rewards"]  # /score: null
  assert eva[::2] == [None] * 4


def test_query_templates():
  gemma = protocols.query_template("gemma")
  query = gemma.query("a {response} b", "c")
  assert protocols.split_query(gemma, query, gemma.prompt_text("a {response} b")) == ("a {response} b", "c")
  custom = protocols.query_template("Q: {prompt}\nA: {response}")
  assert custom.query("x", "y") == "Q: x\nA: y"
  assert protocols.split_query(custom, "Q: x\nA: y z", None) == ("x", "y z")
  for bad in ("{response} then {prompt}", "only {prompt}", "mistral"):
    with pytest.raises(ValueError, match="neither a preset"):
      protocols.query_template(bad)


@pytest.mark.parametrize(
  "overrides, message",
  [
    ({"reward__protocol": "tgi"}, "config.reward.protocol: 'tgi' is not one of"),
    (
      {"reward__kind": "remote", "reward__protocol": "vllm", "reward__url": "http://h:8000/score"},
      "config.reward.url: 'http://h:8000/score': a vLLM reward server answers at .../classify",
    ),
    ({"reward__query_template": "{prompt} only"}, "config.reward.query_template: '{prompt} only' is neither"),
  ],
)
def test_config_errors_name_the_field(overrides, message):
  config = quickstart.get_config()
  config_lib.override(config, {k.replace("__", "."): v for k, v in overrides.items()})
  with pytest.raises(config_lib.ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
    reward_config.parse(config)


def _uf_seeds(path):
  """UltraFeedback's schema (prompt, prompt_id, messages) holding task prompts, as a Parquet file.

  Easy to hard (3 per difficulty bucket), so some prompts get a reward spread and the round trains.
  """
  prompts = TASK.eval_prompts(3)
  rows = [
    {
      "prompt": p,
      "prompt_id": f"id{i}",
      "messages": [{"content": p, "role": "user"}, {"content": "", "role": "assistant"}],
    }
    for i, p in enumerate(prompts)
  ]
  pq.write_table(pa.Table.from_pylist(rows), path)
  return prompts


@pytest.mark.parametrize(
  "protocol, handler, path",
  [
    ("vllm", protocol_stubs.VllmHandler, "/classify"),
    ("openrlhf", protocol_stubs.OpenRLHFHandler, "/get_reward"),
  ],
)
def test_a_tiny_eva_round_scored_by_the_stub(stub, tmp_path, protocol, handler, path):
  server = stub(handler)
  seeds = _uf_seeds(tmp_path / "uf.parquet")
  config = quickstart.get_config()
  config_lib.override(
    config,
    {
      "loop.rounds": 1,
      "loop.num_samples": 4,
      "loop.sample_batch_size": 16,
      "loop.min_chosen_reward": float("-inf"),
      "pool.seed_source": "parquet",
      "pool.seed_path": str(tmp_path / "uf.parquet"),
      "pool.seed_field": "messages",
      "pool.num_seeds": 0,
      "creator.num_evolutions": 2,
      "reward.kind": "remote",
      "reward.protocol": protocol,
      "reward.url": server.base_url() + path,
      "reward.model": "stub-rm",
      "reward.batch_size": 8,
      "solver.epochs": 1,
      "eval.per_bucket": 1,
      "eval.reference": "",
    },
  )
  cfg = config_lib.parse(config, jax.device_count())
  summary = runner.run(cfg, tmp_path / "run", config_lib.flatten(config))
  stats = summary["rounds"][1]["stats"]
  scored = [b for b in server.bodies]
  sent_prompts = (
    [b["messages"][0]["content"] for b in scored]
    if protocol == "vllm"
    else [protocol_stubs.GEMMA_QUERY.fullmatch(q)["prompt"] for b in scored for q in b["query"]]
  )
  assert set(seeds) <= set(sent_prompts)  # every seed was sampled and scored through the stub
  # The round's rewards are the stub's (the task's graded reward of what the model answered): the
  # shipped base answers most easy seeds right, and the graded reward gives partial credit.
  assert 0.5 < stats["round/reward_mean"] <= 1.0 and math.isfinite(stats["round/reward_min"])
  assert stats["round/train_pairs"] > 0
