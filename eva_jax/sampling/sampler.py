"""Host side of sampling: validation, shape bucketing, batching over the mesh, progress, decoding text.

`sample(...)` takes prompt strings and returns, for each prompt, N sampled responses with their
token ids, per-token log-probs, lengths and finish reasons. Prompt columns and batch rows are
rounded up to a few bucket sizes so a long run compiles a handful of programs.
"""

from collections.abc import Sequence
import dataclasses
import time

from gemma import gm
import jax
import numpy as np
import tqdm

from eva_jax.models import batching
from eva_jax.models import chat_template
from eva_jax.parallel import distributed
from eva_jax.parallel import partition
from eva_jax.sampling import decode


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
  num_samples: int = 1  # responses per prompt (eva: n = 6)
  max_new_tokens: int = 64  # response token limit (paper: 2048)
  temperature: float = 0.7  # 0 = greedy (paper: 0.7)
  top_k: int = 0  # 0 = off
  top_p: float = 0.9  # 1.0 = off (paper: 0.9)
  batch_size: int = 32  # prompts per device call
  max_cache_length: int = 4096  # prompt + response tokens a row may hold
  extra_stop_tokens: tuple[int, ...] = ()  # stop ids besides EOS and <end_of_turn>
  min_cache_length: int = 0  # 0 = tight cache (prompt bucket + max_new_tokens); for benchmarks

  def validate(self) -> None:
    for name in ("num_samples", "max_new_tokens", "batch_size", "max_cache_length"):
      if getattr(self, name) < 1:
        raise ValueError(f"sampling.{name} must be >= 1, got {getattr(self, name)}")
    if self.temperature < 0:
      raise ValueError(f"sampling.temperature must be >= 0, got {self.temperature}")
    if self.top_k < 0:
      raise ValueError(f"sampling.top_k must be >= 0, got {self.top_k}")
    if not 0 < self.top_p <= 1:
      raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p}")


@dataclasses.dataclass(frozen=True)
class Samples:
  """`R = num_prompts * num_samples` rows; row r answers prompt `prompt_index[r]`."""

  prompt_index: np.ndarray  # [R] int
  tokens: np.ndarray  # [R, T] int32, padding (0) after the stop token
  logprobs: np.ndarray  # [R, T] float32 model log-probs of the sampled tokens, 0 on padding
  lengths: np.ndarray  # [R] tokens generated, stop token included
  finish_reason: tuple[str, ...]  # [R] "stop" (a stop token) or "length" (max_new_tokens)
  text: tuple[str, ...]  # [R] decoded responses, stop token and anything after removed


def _settings(config: SamplingConfig, tokenizer: gm.text.Tokenizer) -> decode.DecodeSettings:
  special = tokenizer.special_tokens
  return decode.DecodeSettings(
    num_samples=config.num_samples,
    max_new_tokens=config.max_new_tokens,
    temperature=float(config.temperature),
    top_k=config.top_k,
    top_p=float(config.top_p),
    stop_tokens=tuple(sorted({int(special.EOS), int(special.END_OF_TURN), *config.extra_stop_tokens})),
  )


def bucket(n: int, minimum: int) -> int:
  """The next power of two >= max(n, minimum)."""
  return max(minimum, 1 << (n - 1).bit_length())


def sample(
  model: gm.nn.Transformer,
  params,
  tokenizer: gm.text.Tokenizer,
  prompts: Sequence[str],
  config: SamplingConfig,
  rng: jax.Array,
  mesh: jax.sharding.Mesh | None = None,
  progress: bool | None = None,
) -> Samples:
  """Samples `config.num_samples` responses for each prompt with the given params (as sharded).

  Deterministic for a given `rng`; batch i uses `fold_in(rng, i)`. Raises ValueError naming the
  prompt for an empty list, an empty prompt, or a prompt that leaves no room in the cache.
  """
  config.validate()
  if not prompts:
    raise ValueError("no prompts to sample from")
  max_prompt = config.max_cache_length - config.max_new_tokens
  if max_prompt < 1:
    raise ValueError(
      f"max_new_tokens={config.max_new_tokens} leaves no room for a prompt in max_cache_length={config.max_cache_length}"
    )
  encoded = batching.encode_prompts(tokenizer, prompts, max_len=max_prompt)
  settings = _settings(config, tokenizer)
  generate = decode.jitted_generate(model, settings, mesh)
  shards = mesh.shape["data"] * mesh.shape["fsdp"] if mesh is not None else 1
  place = partition.batch_sharding(mesh) if mesh is not None else None
  show = len(prompts) > config.batch_size if progress is None else progress
  bar = tqdm.tqdm(total=len(prompts), unit="prompt", desc="sampling", disable=not show)
  outputs, generated, start = [], 0, time.perf_counter()
  for index, begin in enumerate(range(0, len(prompts), config.batch_size)):
    chunk = encoded[begin : begin + config.batch_size]
    cols = min(bucket(max(map(len, chunk)), 16), max_prompt)
    rows = -(-bucket(len(chunk), 1) // shards) * shards
    tokens = np.zeros((rows, cols), np.int32)
    for row, ids in enumerate(chunk):
      tokens[row, cols - len(ids) :] = ids
    arrays = (tokens, tokens != 0)
    if place is not None:
      arrays = tuple(jax.device_put(a, place) for a in arrays)
    # to_host: on several processes the outputs span other hosts' devices.
    out = distributed.to_host(generate(params, *arrays, jax.random.fold_in(rng, index)))
    keep = len(chunk) * config.num_samples
    outputs.append({k: v[:keep] for k, v in out.items()})
    generated += int(outputs[-1]["lengths"].sum())
    bar.update(len(chunk))
    bar.set_postfix(tok_s=f"{generated / (time.perf_counter() - start):.0f}")
  bar.close()
  merged = {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}
  template = chat_template.for_tokenizer(tokenizer)
  texts = tuple(
    chat_template.extract_response(tokenizer.decode(row[: n - 1 if stopped else n].tolist()), template)
    for row, n, stopped in zip(merged["tokens"], merged["lengths"], merged["stopped"])
  )
  return Samples(
    prompt_index=np.repeat(np.arange(len(prompts)), config.num_samples),
    tokens=merged["tokens"],
    logprobs=merged["logprobs"],
    lengths=merged["lengths"],
    finish_reason=tuple("stop" if s else "length" for s in merged["stopped"]),
    text=texts,
  )


def compile_count(
  model: gm.nn.Transformer, config: SamplingConfig, tokenizer: gm.text.Tokenizer, mesh=None
) -> int:
  """Programs compiled so far for this model and sampling config (shape buckets seen)."""
  settings = _settings(config, tokenizer)
  return decode.jitted_generate(model, settings, mesh)._cache_size()
