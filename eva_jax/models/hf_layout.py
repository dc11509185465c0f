"""Which Hugging Face layout a family's checkpoints follow: Gemma 2 / 3 (`hf_format`) or Gemma 4 (`hf_gemma4`)."""

from collections.abc import Mapping

from eva_jax.models import hf_format
from eva_jax.models import hf_gemma4

SKIPPED_PREFIXES = hf_format.VISION_PREFIXES + hf_gemma4.MULTIMODAL_PREFIXES


def tensor_rules(config, family: str, *, prefix: str = "model.", hf_vocab: int | None = None) -> dict:
  """{gemma param path: hf_format.Rule} for every param of the text model."""
  layout = hf_gemma4 if family == "gemma4" else hf_format
  return layout.tensor_rules(config, prefix=prefix, hf_vocab=hf_vocab)


def check_config(hf_config: Mapping, config, family: str, *, name: str, where) -> int:
  """ValueError naming the first `config.json` field that contradicts `name`; else the vocab size."""
  if family == "gemma4":
    return hf_gemma4.check_config(hf_config, config, name=name, where=where)
  return hf_format.check_config(hf_config, config, family, name=name, where=where)


def make_config(config, family: str, *, dtype: str, special_ids: Mapping) -> dict:
  """The `config.json` of an exported text model."""
  if family == "gemma4":
    return hf_gemma4.make_config(config, dtype=dtype, special_ids=special_ids)
  return hf_format.make_config(config, family, dtype=dtype, special_ids=special_ids)
