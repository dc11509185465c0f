"""Evolvers: chained evolution with the task's operators, and the LLM evolver on our sampler (tiny Gemma)."""

import collections
import dataclasses

import jax
import numpy as np
import pytest

from eva_jax import tasks
from eva_jax.creator import config as creator_config
from eva_jax.creator import filters
from eva_jax.creator import records as records_lib
from eva_jax.creator.evolvers import backends
from eva_jax.creator.evolvers import factory
from eva_jax.creator.evolvers import llm
from eva_jax.creator.evolvers import meta_prompts
from eva_jax.creator.evolvers import protocol
from eva_jax.creator.evolvers import task as task_evolver_lib
from eva_jax.sampling import sampler
from eva_jax.tasks import addition

ADDITION = tasks.get_task("addition")
SEEDS = ["Compute 12+34.", "What is 5 + 67?", "Add 8 and 9."]


def _digits(prompt: str) -> int:
  return sum(len(str(x)) for x in addition.parse_prompt(prompt).operands)


def test_method_distribution():
  dist = protocol.MethodDistribution.create([("a", 1.0), ("b", 3.0)], ["a", "b", "c"])
  assert dist.names == ("a", "b") and dist.probs == (0.25, 0.75)
  assert protocol.MethodDistribution.create([], ["a", "b"]).probs == (0.5, 0.5)
  draws = dist.draw(20_000, np.random.default_rng(0))
  assert abs(draws.count("b") / 20_000 - 0.75) < 4.5 * np.sqrt(0.75 * 0.25 / 20_000)
  with pytest.raises(ValueError, match="unknown methods"):
    protocol.MethodDistribution.create([("z", 1.0)], ["a"])
  with pytest.raises(ValueError, match="positive sum"):
    protocol.MethodDistribution.create([("a", 0.0)], ["a"])


def test_task_evolver_chains_keep_all_children_with_lineage():
  methods = protocol.MethodDistribution.create([("add_digit", 1.0)], task_evolver_lib.task_methods(ADDITION))
  evolver = task_evolver_lib.task_evolver(ADDITION, methods, num_evolutions=4)
  parents = records_lib.seed_records(SEEDS)
  out = evolver.evolve(parents, generation=3, rng=np.random.default_rng(0))
  assert out.requests == 12 and not out.drops and len(out.children) == 12
  assert [c.prompt_id for c in out.children] == [f"g3-{i}" for i in range(12)]
  by_id = {r.prompt_id: r for r in parents + out.children}
  for parent in parents:
    chain, current = [], parent
    for _ in range(4):  # follow the chain down: child i is the parent of child i+1
      (current,) = [c for c in out.children if c.parent_id == current.prompt_id]
      chain.append(current)
    assert [_digits(c.text) for c in chain] == [_digits(parent.text) + d for d in (1, 2, 3, 4)]
    for child in chain:
      assert (child.root_id, child.generation, child.method, child.source) == (
        parent.prompt_id,
        3,
        "add_digit",
        "evolved",
      )
      assert by_id[child.parent_id].text != child.text
  again = evolver.evolve(parents, generation=3, rng=np.random.default_rng(0))
  assert again == out  # deterministic for a seed


def test_task_evolver_counts_what_it_cannot_do():
  methods = protocol.MethodDistribution.create(
    [("remove_digit", 1.0)], task_evolver_lib.task_methods(ADDITION)
  )
  evolver = task_evolver_lib.task_evolver(ADDITION, methods, num_evolutions=2)
  parents = records_lib.seed_records(["Compute 5+3.", "Tell me a joke.", "Compute 12+3."])
  out = evolver.evolve(parents, generation=1, rng=np.random.default_rng(0))
  assert out.requests == 6
  # "Compute 12+3." -> one digit removed -> then nothing left to remove.
  (child,) = out.children
  assert child.parent_id == "g0-2" and child.text.startswith("Compute ") and _digits(child.text) == 2
  assert out.drops == collections.Counter(not_applicable=3, not_task_prompt=2)
  with pytest.raises(ValueError, match="has no evolution methods"):
    task_evolver_lib.task_evolver(ADDITION, protocol.MethodDistribution.create([("deepen", 1.0)], ["deepen"]))


def test_a_filtered_step_leaves_the_chain_at_its_last_accepted_prompt():
  methods = protocol.MethodDistribution.create([("rephrase", 1.0)], task_evolver_lib.task_methods(ADDITION))
  evolver = task_evolver_lib.task_evolver(ADDITION, methods, num_evolutions=3)
  parents = records_lib.seed_records(SEEDS[:2])
  calls = []

  def reject_first_step(texts):
    calls.append(list(texts))
    return ["test"] * len(texts) if len(calls) == 1 else [None] * len(texts)

  out = evolver.evolve(parents, generation=1, rng=np.random.default_rng(1), accept=reject_first_step)
  assert len(calls) == 3 and [len(c) for c in calls] == [2, 2, 2]
  assert len(out.children) == 4
  first = out.children[:2]  # made in step 2 from the untouched seeds
  assert [c.parent_id for c in first] == ["g0-0", "g0-1"]
  assert [c.parent_id for c in out.children[2:]] == [first[0].prompt_id, first[1].prompt_id]
  assert [c.text for c in first] == calls[1]


def test_factory_builds_the_task_evolver_from_config():
  config = creator_config.CreatorConfig(evolver="task", methods=(("resample", 1.0),), num_evolutions=2)
  evolver = factory.build_evolver(config)
  out = evolver.evolve(records_lib.seed_records(SEEDS), generation=1, rng=np.random.default_rng(0))
  assert len(out.children) == 6 and {c.method for c in out.children} == {"resample"}
  assert all(
    ADDITION.difficulty(c.text) == ADDITION.difficulty(SEEDS[i % 3]) for i, c in enumerate(out.children)
  )


class Recording:
  """Passes every call through to a real backend and keeps the prompts and answers."""

  def __init__(self, backend):
    self.backend, self.calls = backend, []

  def complete(self, prompts, rng):
    out = self.backend.complete(prompts, rng)
    self.calls.append((list(prompts), out))
    return out


SAMPLING = sampler.SamplingConfig(
  num_samples=1, max_new_tokens=12, temperature=1.0, top_p=1.0, max_cache_length=1024
)


def test_gemma_backend_is_our_sampler_on_the_meta_prompts(tiny_model, tiny_params, tokenizer):
  backend = backends.GemmaBackend(tiny_model, tiny_params, tokenizer, SAMPLING)
  prompts = [meta_prompts.render("deepen", p) for p in SEEDS]
  out = backend.complete(prompts, np.random.default_rng(7))
  key = jax.random.key(int(np.random.default_rng(7).integers(2**31)))
  reference = sampler.sample(tiny_model, tiny_params, tokenizer, prompts, SAMPLING, key)
  assert [c.text for c in out] == list(reference.text)
  assert [c.finish for c in out] == list(reference.finish_reason)
  small = backends.GemmaBackend(
    tiny_model, tiny_params, tokenizer, dataclasses.replace(SAMPLING, max_cache_length=64)
  )
  assert small.complete(prompts, np.random.default_rng(0)) == [backends.Completion(None, "too_long")] * 3


def test_llm_evolver_on_the_tiny_gemma_model(tiny_model, tiny_params, tokenizer):
  # Random params write garbage: the parser, the drop counters and the filters get real junk.
  backend = Recording(backends.GemmaBackend(tiny_model, tiny_params, tokenizer, SAMPLING))
  single = [(m, 1.0) for m in meta_prompts.METHODS if m not in meta_prompts.NEEDS_PARTNER]  # exact replay
  methods = protocol.MethodDistribution.create(single, meta_prompts.METHODS)
  evolver = llm.llm_evolver(backend, methods, num_evolutions=2, drop_truncated=False)
  parents = records_lib.seed_records(SEEDS)
  # Keep junk characters so that children survive to be checked (the filter is tested elsewhere).
  keep_junk = creator_config.FilterConfig(drop_bad_chars=False)
  prompt_filter = filters.PromptFilter(keep_junk, [p.text for p in parents])
  out = evolver.evolve(parents, generation=1, rng=np.random.default_rng(0), accept=prompt_filter.check)
  assert out.requests == 6 and len(backend.calls) == 2 and len(out.children) >= 3
  assert any(c.parent_id.startswith("g1-") for c in out.children)  # a real chain of two rewrites
  assert len(out.children) + sum(out.drops.values()) + sum(prompt_filter.counts.values()) == 6
  # Replay: every child is the parsed answer to the meta-prompt built from its parent's text.
  by_id = {r.prompt_id: r for r in parents + out.children}
  answers = {}
  for prompts, completions in backend.calls:
    for prompt, completion in zip(prompts, completions):
      answers[prompt] = completion
  for child in out.children:
    parent = by_id[child.parent_id]
    answer = answers[meta_prompts.render(child.method, parent.text)]
    assert meta_prompts.parse_rewrite(answer.text, parent.text) == (child.text, "")
  # Step 2 rewrites each chain's accepted step-1 child, or its seed if step 1 was dropped.
  step1 = {c.parent_id: c for c in out.children if c.parent_id.startswith("g0-")}
  frontier = [step1.get(p.prompt_id, p).text for p in parents]
  for text, meta in zip(frontier, backend.calls[1][0]):
    assert (meta_prompts.GIVEN + text + "\n\n") in meta


def test_llm_evolver_drops_truncated_rewrites(tiny_model, tiny_params, tokenizer):
  short = dataclasses.replace(SAMPLING, max_new_tokens=3)
  backend = Recording(backends.GemmaBackend(tiny_model, tiny_params, tokenizer, short))
  evolver = llm.llm_evolver(
    backend, protocol.MethodDistribution.create([("expand", 1.0)], meta_prompts.METHODS), 1
  )
  out = evolver.evolve(records_lib.seed_records(SEEDS), generation=1, rng=np.random.default_rng(0))
  truncated = sum(c.finish == "length" for c in backend.calls[0][1])
  assert truncated > 0 and out.drops["truncated"] == truncated
