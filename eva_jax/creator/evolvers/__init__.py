"""Evolvers: how the creator turns selected prompts into new ones.

protocol.py      the Evolver protocol, requests/rewrites, the method distribution
chains.py        chained rewriting shared by every evolver (`ChainEvolver`)
task.py          a verifiable task's own operators (the quickstart's evolver)
meta_prompts.py  our EvolInstruct-style meta-prompts and the parser of LLM answers
llm.py           the LLM evolver (meta-prompt -> backend -> parsed rewrite)
backends.py      Gemma through our sampler; OpenAI-compatible HTTP endpoints
factory.py       `build_evolver(config, ...)`
"""
