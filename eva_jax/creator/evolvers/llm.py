"""The LLM evolver: EvolInstruct-style rewriting by a language model, chained `num_evolutions` times.

Each chain step renders one meta-prompt per chain (`meta_prompts.render`), sends the whole batch to
the backend, and parses every answer (`meta_prompts.parse_rewrite`). Unusable answers are counted
by reason and dropped, never raised: backend failures ("timeout", "http_500", "too_long", ...),
answers cut at the token limit ("truncated", when `drop_truncated`), "no_partner" (a `mix` step with
a single chain), and the parser's "empty", "refusal", "template_leak", "identical".
"""

from collections.abc import Sequence

import numpy as np

from eva_jax.creator.evolvers import backends
from eva_jax.creator.evolvers import chains
from eva_jax.creator.evolvers import meta_prompts
from eva_jax.creator.evolvers import protocol


def llm_rewrite(backend: backends.Backend, drop_truncated: bool = True) -> protocol.RewriteStep:
  def rewrite(requests: Sequence[protocol.Request], rng: np.random.Generator) -> list[protocol.Rewrite]:
    out: list[protocol.Rewrite | None] = [None] * len(requests)
    slots, prompts = [], []
    for i, request in enumerate(requests):
      if request.method in meta_prompts.NEEDS_PARTNER and request.partner is None:
        out[i] = protocol.Rewrite(None, "no_partner")
      else:
        slots.append(i)
        prompts.append(meta_prompts.render(request.method, request.text, request.partner))
    completions = backend.complete(prompts, rng) if prompts else []
    for i, completion in zip(slots, completions, strict=True):
      retries = completion.attempts - 1
      if completion.text is None:
        out[i] = protocol.Rewrite(None, completion.finish, retries)
      elif completion.finish == "length" and drop_truncated:
        out[i] = protocol.Rewrite(None, "truncated", retries)
      else:
        text, reason = meta_prompts.parse_rewrite(completion.text, requests[i].text)
        out[i] = protocol.Rewrite(text, reason, retries)
    return out

  return rewrite


def llm_evolver(
  backend: backends.Backend,
  methods: protocol.MethodDistribution,
  num_evolutions: int = 4,
  drop_truncated: bool = True,
) -> chains.ChainEvolver:
  unknown = set(methods.names) - set(meta_prompts.METHODS)
  if unknown:
    raise ValueError(f"the LLM evolver has no methods {sorted(unknown)}")
  return chains.ChainEvolver(llm_rewrite(backend, drop_truncated), methods, num_evolutions)
