"""The evolver a `CreatorConfig` asks for.

The Gemma backend samples with the model, params and tokenizer it is given (the loop passes the
solver's own, or another Gemma model it loaded) on the given mesh.
"""

from eva_jax import tasks
from eva_jax.creator import config as creator_config
from eva_jax.creator.evolvers import backends
from eva_jax.creator.evolvers import chains
from eva_jax.creator.evolvers import llm
from eva_jax.creator.evolvers import protocol
from eva_jax.creator.evolvers import task as task_evolver_lib


def build_evolver(
  config: creator_config.CreatorConfig, *, model=None, params=None, tokenizer=None, mesh=None
) -> chains.ChainEvolver:
  available = creator_config.evolver_methods(config.evolver, config.task)
  methods = protocol.MethodDistribution.create(config.methods, available)
  if config.evolver == "task":
    return task_evolver_lib.task_evolver(tasks.get_task(config.task), methods, config.num_evolutions)
  if config.llm.backend == "openai":
    backend = backends.OpenAIBackend(config.llm)
  else:
    if model is None or params is None or tokenizer is None:
      raise ValueError("the gemma evolver backend needs a model, its params and tokenizer")
    backend = backends.GemmaBackend(model, params, tokenizer, backends.sampling_config(config.llm), mesh)
  return llm.llm_evolver(backend, methods, config.num_evolutions, config.llm.drop_truncated)
