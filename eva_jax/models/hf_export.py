"""Writes gemma params as a Hugging Face model directory that transformers and vLLM read.

`model.safetensors` (or shards of at most `max_shard_bytes` with their `model.safetensors.index.json`),
`config.json` and `generation_config.json` for the family's *ForCausalLM class, and the tokenizer
files. The directory is written under a temporary name beside the target and renamed when complete,
so an interrupted export never leaves a directory that looks whole; an existing target is refused
unless `replace`. Params are fetched from the devices one shard file at a time.
"""

from collections.abc import Mapping
from collections.abc import Sequence
import json
import math
import os
import shutil

from etils import epath
import flax
import jax
from jax.experimental import multihost_utils
import ml_dtypes
import numpy as np
from safetensors import numpy as safetensors_numpy
import sentencepiece
import tqdm

from eva_jax.models import hf_import
from eva_jax.models import hf_layout

MAX_SHARD_BYTES = 5 * 10**9  # transformers' default max_shard_size ("5GB")
DTYPES = {"bfloat16": ml_dtypes.bfloat16, "float32": np.float32}
# What a tokenizer of a Hugging Face directory consists of; copied when the run read one.
TOKENIZER_FILES = (
  "tokenizer.model",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "chat_template.jinja",
)


def _host(array) -> np.ndarray:
  if getattr(array, "is_fully_addressable", True):
    return np.asarray(jax.device_get(array))
  return np.asarray(multihost_utils.process_allgather(array, tiled=True))


def shard_plan(tensors: Mapping[str, tuple[tuple[int, ...], int]], max_shard_bytes: int) -> list[list[str]]:
  """Tensor names grouped into files of at most `max_shard_bytes` (a bigger tensor gets one alone).

  `tensors`: {name: (shape, bytes per element)}, in the order they are written.
  """
  shards: list[list[str]] = [[]]
  size = 0
  for name, (shape, itemsize) in tensors.items():
    nbytes = math.prod(shape) * itemsize
    if shards[-1] and size + nbytes > max_shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(name)
    size += nbytes
  return shards


def _file_names(count: int) -> list[str]:
  if count == 1:
    return [hf_import.SINGLE]
  return [f"model-{k + 1:05d}-of-{count:05d}.safetensors" for k in range(count)]


# The Gemma turn format of `chat_template.py` (a system message joins the first user turn, as
# Gemma's own template does), for transformers' `apply_chat_template` and vLLM's chat endpoint.
CHAT_TEMPLATE = (
  "{{ bos_token }}"
  "{% set system = '' %}"
  "{% if messages and messages[0]['role'] == 'system' %}"
  "{% set system = messages[0]['content'] + '\n\n' %}{% set messages = messages[1:] %}{% endif %}"
  "{% for message in messages %}"
  "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
  "{{ '<start_of_turn>' + role + '\n' + (system if loop.first else '') + message['content'] + '<end_of_turn>\n' }}"
  "{% endfor %}"
  "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
)


def tokenizer_config(tokenizer_model: epath.Path) -> dict:
  """`tokenizer_config.json` for a bare sentencepiece model with Gemma's special-token layout."""
  processor = sentencepiece.SentencePieceProcessor(model_file=str(tokenizer_model))
  piece = processor.id_to_piece
  return {
    "tokenizer_class": "GemmaTokenizer",
    "pad_token": piece(0),
    "eos_token": piece(1),
    "bos_token": piece(2),
    "unk_token": piece(3),
    "add_bos_token": True,
    "add_eos_token": False,
    "chat_template": CHAT_TEMPLATE,
  }


def write_tokenizer(
  target: epath.Path, tokenizer_dir: epath.Path | None, tokenizer_model: epath.Path
) -> None:
  """The tokenizer files of the directory the run read, else its sentencepiece model with a config."""
  copied = False
  if tokenizer_dir is not None:
    for name in TOKENIZER_FILES:
      if (tokenizer_dir / name).exists():
        shutil.copyfile(tokenizer_dir / name, target / name)
        copied = True
  if not copied:
    shutil.copyfile(tokenizer_model, target / "tokenizer.model")
    (target / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(tokenizer_model), indent=2))


def export(
  params,
  model_config,
  family: str,
  out_dir: epath.PathLike,
  *,
  dtype: str = "bfloat16",
  special_ids: Mapping[str, int | Sequence[int]],
  tokenizer_model: epath.PathLike,
  tokenizer_dir: epath.PathLike | None = None,
  replace: bool = False,
  max_shard_bytes: int = MAX_SHARD_BYTES,
) -> epath.Path:
  """Writes `params` (the gemma tree of a text model with `model_config`) to `out_dir`; returns it.

  `special_ids`: bos_token_id, eos_token_id (a list: end of text and end of turn), pad_token_id.
  """
  if dtype not in DTYPES:
    raise ValueError(f"export dtype {dtype!r} is not one of {sorted(DTYPES)}")
  out_dir = epath.Path(out_dir)
  if out_dir.exists() and not replace:
    raise ValueError(f"export directory {out_dir} already exists (pass --replace to overwrite it)")
  np_dtype = DTYPES[dtype]
  rules = hf_layout.tensor_rules(model_config, family)
  flat = flax.traverse_util.flatten_dict(params, sep="/")
  if set(flat) != set(rules):
    raise ValueError(f"params do not match the model: {sorted(set(flat) ^ set(rules))[:5]}")
  owner = {hf_name: key for key, rule in rules.items() for hf_name in rule.hf_names}
  shapes = {
    n: (s, np.dtype(np_dtype).itemsize) for r in rules.values() for n, s in zip(r.hf_names, r.hf_shapes)
  }
  shards = shard_plan(shapes, max_shard_bytes)
  names = _file_names(len(shards))
  main = jax.process_index() == 0
  partial = out_dir.parent / f".{out_dir.name}.partial-{os.getpid()}"
  if main:
    if partial.exists():
      partial.rmtree()
    partial.mkdir(parents=True)
  weight_map = {}
  for file, shard in tqdm.tqdm(
    list(zip(names, shards)), desc=f"writing {out_dir.name}", unit="file", leave=False
  ):
    tensors = {}
    for key in dict.fromkeys(owner[n] for n in shard):  # every gemma param of this file, once
      pieces = rules[key].to_hf(_host(flat[key]))
      for hf_name, piece in zip(rules[key].hf_names, pieces):
        tensors[hf_name] = np.ascontiguousarray(piece.astype(np_dtype))
    tensors = {n: tensors[n] for n in shard}  # a param split over two files keeps only this file's part
    if main:
      safetensors_numpy.save_file(tensors, str(partial / file), metadata={"format": "pt"})
    weight_map.update(dict.fromkeys(shard, file))
    del tensors
  if main:
    if len(names) > 1:
      total = sum(math.prod(s) * b for s, b in shapes.values())
      index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
      (partial / hf_import.INDEX).write_text(json.dumps(index, indent=2))
    config = hf_layout.make_config(model_config, family, dtype=dtype, special_ids=special_ids)
    (partial / hf_import.CONFIG).write_text(json.dumps(config, indent=2))
    generation = {**special_ids, "_from_model_config": False}
    (partial / "generation_config.json").write_text(json.dumps(generation, indent=2))
    write_tokenizer(
      partial, epath.Path(tokenizer_dir) if tokenizer_dir else None, epath.Path(tokenizer_model)
    )
    if out_dir.exists():  # replace: the old one goes only once the new one is complete
      old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
      out_dir.rename(old)
      partial.rename(out_dir)
      old.rmtree()
    else:
      partial.rename(out_dir)
  return out_dir
