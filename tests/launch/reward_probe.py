"""One process of a multi-process reward job (run by test_local_multihost.py through launch/local_multihost.py).

    python -m tests.launch.reward_probe --url=http://127.0.0.1:PORT/score --down_url=http://127.0.0.1:PORT2/score

Joins the distributed system, then scores the same pairs on every process with
- the remote source (`reward.kind=remote`) against `url`: only process 0 may send requests;
- the remote source against `down_url`, where nothing listens: every process must fail, not hang;
- a tiny random JAX reward model (`reward.kind=model`) on a mesh over every process's devices, and
  again on this process's first device alone (the single-process reference);
- the LLM evolver's HTTP backend against `llm_url` (an OpenAI-compatible stub): only process 0 may
  send the rewrite requests, every process must get the same completions;
and prints one `REWARDS <json>` line with what it got (rewards as float32 hex, to compare bit for bit).
"""

import argparse
import dataclasses
import json

import jax
import numpy as np

from eva_jax.creator import config as creator_config
from eva_jax.creator.evolvers import backends
from eva_jax.creator.evolvers import meta_prompts as meta
from eva_jax.models import architectures
from eva_jax.models import tokenizer as tokenizer_lib
from eva_jax.parallel import distributed
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.rewards import config as reward_config
from eva_jax.rewards import factory
from eva_jax.rewards import model_source
from eva_jax.rewards import remote
from eva_jax.rewards import reward_model
from eva_jax.tasks import get_task

NUM_PAIRS = 10
BATCH_SIZE = 4  # pairs per request: 3 requests for the 10 pairs


def pairs() -> tuple[list[str], list[str]]:
  """The pairs every process scores: task prompts, every third response wrong."""
  task = get_task("addition")
  prompts = task.seed_prompts(NUM_PAIRS, 5)
  responses = [task.reference(p) if i % 3 else "Reversed sum: 12" for i, p in enumerate(prompts)]
  return prompts, responses


def _hex(rewards: np.ndarray) -> str:
  return np.asarray(rewards, np.float32).tobytes().hex()


def _model_rewards(prompts, responses, devices) -> np.ndarray:
  model = architectures.build_model("tiny")
  mesh = mesh_lib.make_mesh({"data": -1}, devices=devices)
  params = reward_model.init_params(model, jax.random.key(7), reward_model.shardings_for(model, mesh))
  tokenizer = tokenizer_lib.load_tokenizer("embedded")
  source = model_source.ModelRewardSource(model, params, tokenizer, mesh, batch_size=8, progress=False)
  return source.score(prompts, responses)


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--url", required=True)
  parser.add_argument("--down_url", required=True)
  parser.add_argument("--llm_url", required=True)
  opts = parser.parse_args()
  distributed.initialize(distributed.settings_from())
  prompts, responses = pairs()

  cfg = reward_config.RewardConfig(kind="remote", url=opts.url, batch_size=BATCH_SIZE, max_concurrency=2)
  source = factory.make_reward_source(cfg, progress=False)
  rewards = source.score(prompts, responses)
  source.close()

  down = factory.make_reward_source(
    reward_config.RewardConfig(kind="remote", url=opts.down_url, batch_size=BATCH_SIZE, max_retries=0),
    progress=False,
  )
  try:
    down.score(prompts, responses)
    down_error = None
  except remote.RewardServerError as e:
    down_error = str(e)
  down.close()

  model_global = _model_rewards(prompts, responses, jax.devices())
  model_local = _model_rewards(prompts, responses, jax.local_devices()[:1])
  llm = creator_config.LLMConfig(
    base_url=opts.llm_url, model="rewriter-1", api_key_env="", requests_per_second=0.0
  )
  meta_prompts = [meta.render(method, p) for method, p in zip(meta.METHODS, prompts[:3])]
  completions = backends.OpenAIBackend(llm, progress=False).complete(meta_prompts, np.random.default_rng(0))
  distributed.barrier("reward_probe_done")
  report = {
    "process": jax.process_index(),
    "processes": jax.process_count(),
    "remote": _hex(rewards),
    "requests": source.stats.requests,
    "down_error": down_error,
    "model_global": _hex(model_global),
    "model_local": _hex(model_local),
    "evolver": [dataclasses.astuple(c) for c in completions],
  }
  print("REWARDS " + json.dumps(report), flush=True)


if __name__ == "__main__":
  main()
