"""Reads a Hugging Face Gemma checkpoint (`save_pretrained` directory) into sharded gemma params.

A directory holding `config.json` is a Hugging Face checkpoint; anything else is the gemma
library's orbax format (`params.load_checkpoint` tells them apart). Everything that can be wrong
with the directory is found from `config.json` and the safetensors headers before one tensor is
read or any device memory is allocated: a missing or truncated shard, a config of another family or
size, a tensor missing, left over, of the wrong shape or dtype, each named with its file.

Then the params are built one at a time: each gemma param's Hugging Face tensors are read from
their memory-mapped file, rearranged, cast to the model's dtype and handed to each device as its
own shard (`jax.make_array_from_callback`), so the host holds one param at a time and no device
ever holds more than its shards.
"""

from collections.abc import Mapping
import dataclasses
import json

from etils import epath
import flax
import jax
import ml_dtypes
import numpy as np
import safetensors
import tqdm

from eva_jax.models import hf_format
from eva_jax.models import hf_layout

CONFIG = "config.json"
SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
DTYPES = {"F32": np.float32, "BF16": ml_dtypes.bfloat16, "F16": np.float16}  # what a float checkpoint holds


def is_hf_directory(path: epath.PathLike) -> bool:
  """Whether `path` is a Hugging Face model directory (it has a config.json) rather than orbax."""
  return (epath.Path(path) / CONFIG).exists()


def read_json(path: epath.Path) -> dict:
  try:
    value = json.loads(path.read_text())
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
    raise ValueError(f"{path} does not read as JSON: {error}") from error
  if not isinstance(value, dict):
    raise ValueError(f"{path} is not a JSON object")
  return value


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  file: epath.Path
  shape: tuple[int, ...]
  dtype: str  # safetensors' dtype name: F32, BF16, ...


def tensor_files(path: epath.Path) -> dict[str, epath.Path]:
  """{tensor name: the safetensors file that holds it}, from the index of a sharded save."""
  if (path / INDEX).exists():
    index = path / INDEX
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
      raise ValueError(f"{index} has no weight_map")
    files = {name: path / str(file) for name, file in weight_map.items()}
    for name, file in files.items():
      if not file.exists():
        raise ValueError(f"{file} is missing: {index} lists tensor {name} in it")
    return files
  if (path / SINGLE).exists():
    return {}  # every tensor of the single file; read from its header
  binaries = sorted(p.name for p in path.glob("*.bin"))
  hint = f" (found {binaries[0]}: save with safe_serialization=True)" if binaries else ""
  raise ValueError(f"{path} has a {CONFIG} but neither {SINGLE} nor {INDEX}{hint}")


def read_headers(path: epath.Path) -> dict[str, TensorInfo]:
  """Every tensor's file, shape and dtype, from the safetensors headers only (no tensor is read)."""
  files = tensor_files(path)
  out: dict[str, TensorInfo] = {}
  for file in sorted(set(files.values())) or [path / SINGLE]:
    try:
      with safetensors.safe_open(str(file), framework="numpy") as handle:
        for name in handle.keys():  # noqa: SIM118  (safe_open is not a mapping)
          piece = handle.get_slice(name)
          out[name] = TensorInfo(file, tuple(piece.get_shape()), piece.get_dtype())
    except safetensors.SafetensorError as error:
      raise ValueError(f"{file} is not a complete safetensors file ({error})") from error
  for name, file in files.items():
    if name not in out or out[name].file != file:
      raise ValueError(f"{path / INDEX} lists tensor {name} in {file.name}, which does not hold it")
  return out


def text_prefix(names) -> str:
  """Where the text model sits: "model." (*ForCausalLM) or that of a multimodal Gemma 3."""
  for prefix in ("model.language_model.", "language_model.model.", "model."):
    if f"{prefix}embed_tokens.weight" in names:
      return prefix
  raise ValueError("no embed_tokens.weight tensor (not a Gemma text model?)")


def plan(path: epath.PathLike, config, family: str, *, name: str):
  """(rules, headers) for reading `path` as architecture `name`; raises ValueError on any mismatch."""
  path = epath.Path(path)
  try:
    hf_format.family_info(family)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from None
  hf_config = read_json(path / CONFIG)
  vocab = hf_layout.check_config(hf_config, config, family, name=name, where=path / CONFIG)
  headers = read_headers(path)
  prefix = text_prefix(headers)
  rules = hf_layout.tensor_rules(config, family, prefix=prefix, hf_vocab=vocab)
  wanted = set()
  for rule in rules.values():
    for hf_name, shape in zip(rule.hf_names, rule.hf_shapes):
      wanted.add(hf_name)
      if hf_name not in headers:
        raise ValueError(f"{path}: tensor {hf_name} is missing (model {name})")
      info = headers[hf_name]
      if info.shape != shape:
        raise ValueError(
          f"{info.file}: tensor {hf_name} has shape {info.shape}, model {name} expects {shape}"
        )
      if info.dtype not in DTYPES:
        raise ValueError(f"{info.file}: tensor {hf_name} is {info.dtype}, not one of {sorted(DTYPES)}")
  skipped = ("lm_head.weight",) + hf_layout.SKIPPED_PREFIXES  # tied head (checked in config); vision
  extra = sorted(n for n in headers if n not in wanted and not n.startswith(skipped))
  if extra:
    raise ValueError(
      f"{headers[extra[0]].file}: tensor {extra[0]} is not part of model {name}"
      + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
    )
  return rules, headers


def load(path: epath.PathLike, model, shardings, *, family: str, name: str, abstract: Mapping):
  """The params of the Hugging Face checkpoint at `path`, placed in `shardings` in the model's dtype.

  `abstract` is the model's param tree of ShapeDtypeStructs (`params.abstract_params`).
  """
  rules, headers = plan(path, model.config, family, name=name)
  flat_abstract = flax.traverse_util.flatten_dict(abstract, sep="/")
  flat_shardings = flax.traverse_util.flatten_dict(shardings, sep="/")
  if set(rules) != set(flat_abstract):  # a mapping bug, not a user error
    raise AssertionError(f"rules and params differ: {sorted(set(rules) ^ set(flat_abstract))[:5]}")
  out = {}
  for key in tqdm.tqdm(sorted(rules), desc=f"reading {epath.Path(path).name}", unit="param", leave=False):
    rule, want = rules[key], flat_abstract[key]
    parts = []
    for hf_name in rule.hf_names:
      file = headers[hf_name].file
      # Opened per tensor: the file's memory map (whose read pages count as this process's memory)
      # goes with it, so the host holds one param at a time, not the checkpoint.
      with safetensors.safe_open(str(file), framework="numpy") as handle:
        parts.append(handle.get_tensor(hf_name))
      if not np.isfinite(parts[-1]).all():
        raise ValueError(f"{file}: tensor {hf_name} holds NaN or inf")
    host = np.ascontiguousarray(rule.to_gemma(parts).astype(want.dtype))
    del parts
    out[key] = jax.make_array_from_callback(host.shape, flat_shardings[key], lambda index, h=host: h[index])
    del host
  return flax.traverse_util.unflatten_dict(out, sep="/")
