"""Sample n responses per prompt with the current params and score them: the reward matrix of a round."""

from collections.abc import Sequence
import dataclasses
import time

import jax
import numpy as np

from eva_jax.models import batching
from eva_jax.rewards import nonfinite
from eva_jax.sampling import sampler


@dataclasses.dataclass(frozen=True)
class ScoredResponses:
  """n responses for each of P prompts. Rows of `rewards` are prompts; NaN marks a dropped response."""

  prompts: list[str]
  prompt_ids: list[list[int]]  # BOS + chat-formatted prompt token ids, per prompt
  response_ids: list[list[list[int]]]  # [P][n] sampled token ids (stop token included)
  texts: list[list[str]]  # [P][n] decoded responses
  logprobs: list[list[list[float]]]  # [P][n] sampling-time log-probs of each response token
  rewards: np.ndarray  # [P, n] float32
  tokens_sampled: int
  sample_seconds: float = 0.0  # wall time of sampling (includes any compilation)
  score_seconds: float = 0.0  # wall time of the reward source

  @property
  def num_dropped(self) -> int:
    return int(np.isnan(self.rewards).sum())


def sample_and_score(
  model,
  params,
  tokenizer,
  prompts: Sequence[str],
  config: sampler.SamplingConfig,
  rng: jax.Array,
  reward_source,
  nonfinite_policy: str,
  *,
  prompt_keys: Sequence[str] | None = None,
  mesh=None,
) -> ScoredResponses:
  """Samples `config.num_samples` responses per prompt and scores every one.

  Non-finite rewards follow `nonfinite_policy` ("drop": NaN in the matrix and reported by
  `prompt_keys`, e.g. pool prompt ids; "fail": raises).
  """
  n = config.num_samples
  start = time.perf_counter()
  samples = sampler.sample(model, params, tokenizer, list(prompts), config, rng, mesh=mesh)
  texts = list(samples.text)
  repeated = [prompts[i] for i in samples.prompt_index]
  sampled = time.perf_counter()
  keys = None if prompt_keys is None else [prompt_keys[i] for i in samples.prompt_index]
  rewards, keep, _ = nonfinite.score_with_policy(reward_source, repeated, texts, nonfinite_policy, keys)
  scored = time.perf_counter()
  rewards = np.where(keep, np.asarray(rewards, np.float32), np.nan).reshape(len(prompts), n)
  ids = [row[:length].tolist() for row, length in zip(samples.tokens, samples.lengths)]
  lps = [row[:length].tolist() for row, length in zip(samples.logprobs, samples.lengths)]
  return ScoredResponses(
    prompts=list(prompts),
    prompt_ids=batching.encode_prompts(tokenizer, prompts),
    response_ids=[ids[i * n : (i + 1) * n] for i in range(len(prompts))],
    texts=[texts[i * n : (i + 1) * n] for i in range(len(prompts))],
    logprobs=[lps[i * n : (i + 1) * n] for i in range(len(prompts))],
    rewards=rewards,
    tokens_sampled=int(samples.lengths.sum()),
    sample_seconds=sampled - start,
    score_seconds=scored - sampled,
  )
