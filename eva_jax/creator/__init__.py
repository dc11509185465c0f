"""The creator: scores prompts by informativeness, selects, evolves, filters, and keeps the TFDS pool.

informativeness.py  regret proxies of a reward matrix (gap, maxmean, var, ...) and normalisation
selection.py        importance-weighted / greedy / stratified / uniform selection
evolvers/           task and LLM evolvers with chained rewriting
filters.py          dedup against the pool, empty, bad characters, token length, user hook
records.py          a pool prompt: id, text, lineage, reward statistics
pool.py             generations of the pool as TFDS datasets, written atomically
lineage.py          ancestors, children, per-generation summaries
seeds.py            seed prompts from the task, JSONL, CSV or a TFDS dataset
text.py             text normalisation and character checks
generation.py       one creator step: pool_t + rewards -> pool_{t+1}
config.py           `config.creator` and `config.pool`
"""
