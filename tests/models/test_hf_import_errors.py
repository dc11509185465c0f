"""A broken Hugging Face directory is one line naming the file and tensor, before any device memory.

The directories are real `save_pretrained` output of a tiny transformers Gemma 2 model, then broken
one way each (a shard deleted or cut short, a tensor of the wrong shape, dtype or name, a config
of another family or size).
"""

import gc
import json
import shutil

import jax
import numpy as np
import pytest
from safetensors import numpy as safetensors_numpy
import transformers

from eva_jax.models import architectures
from eva_jax.models import hf_export
from eva_jax.models import params as params_lib
from eva_jax.models import tokenizer as tokenizer_lib
from eva_jax.parallel import mesh as mesh_lib


def tiny_hf_dir(path, **save):
  config = transformers.Gemma2Config(
    vocab_size=tokenizer_lib.EMBEDDED_VOCAB_SIZE,
    hidden_size=128,
    intermediate_size=512,
    num_hidden_layers=3,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=32,
    sliding_window=64,
    query_pre_attn_scalar=32,
  )
  transformers.Gemma2ForCausalLM(config).save_pretrained(path, **save)
  return path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
  root = tmp_path_factory.mktemp("hf")
  return {
    "single": tiny_hf_dir(root / "single"),
    "sharded": tiny_hf_dir(root / "sharded", max_shard_size="200KB"),
  }


@pytest.fixture
def hf_dir(pristine, tmp_path):
  return shutil.copytree(pristine["single"], tmp_path / "hf")


@pytest.fixture
def sharded_dir(pristine, tmp_path):
  return shutil.copytree(pristine["sharded"], tmp_path / "hf")


def shardings(model):
  return params_lib.shardings_for(model, mesh_lib.make_mesh({"data": 1}, devices=jax.devices()[:1]))


def load_error(path, name="tiny") -> str:
  """The one-line error loading `path` as `name`; asserts nothing was put on a device."""
  model = architectures.build_model(name)
  gc.collect()  # arrays an earlier test dropped must not be freed during the call and count as ours
  before = len(jax.live_arrays())
  with pytest.raises(ValueError) as info:
    params_lib.load_gemma_checkpoint(path, model, shardings(model), name=name)
  gc.collect()
  assert len(jax.live_arrays()) == before
  message = str(info.value)
  assert "\n" not in message
  return message


def rewrite(path, edit):
  """Rewrites the single safetensors file of `path` with `edit(tensors)` applied."""
  file = path / "model.safetensors"
  with open(file, "rb"):
    tensors = safetensors_numpy.load_file(str(file))
  edit(tensors)
  safetensors_numpy.save_file(tensors, str(file), metadata={"format": "pt"})


def test_a_missing_shard_is_named_with_a_tensor_it_holds(sharded_dir):
  index = json.loads((sharded_dir / "model.safetensors.index.json").read_text())
  shard = sorted(set(index["weight_map"].values()))[1]
  (sharded_dir / shard).unlink()
  message = load_error(sharded_dir)
  assert f"{sharded_dir / shard} is missing" in message
  assert "lists tensor model." in message


def test_a_truncated_shard_is_named(sharded_dir):
  shard = sorted(sharded_dir.glob("model-*.safetensors"))[0]
  data = shard.read_bytes()
  shard.write_bytes(data[: len(data) // 2])
  assert f"{shard} is not a complete safetensors file" in load_error(sharded_dir)


def test_a_config_of_another_family_is_refused(hf_dir):
  config = json.loads((hf_dir / "config.json").read_text())
  config["model_type"] = "llama"
  (hf_dir / "config.json").write_text(json.dumps(config))
  assert (
    load_error(hf_dir)
    == f"{hf_dir / 'config.json'}: model_type is 'llama', model tiny is a gemma2 model (gemma2)"
  )


def test_a_config_of_another_size_names_the_field_and_both_values(hf_dir):
  message = load_error(hf_dir, name="small")
  assert message == f"{hf_dir / 'config.json'}: num_hidden_layers is 3, model small has 6 (wrong model.name?)"


def test_a_gemma2_directory_read_as_gemma3_names_the_family(hf_dir):
  assert "model_type is 'gemma2', model tiny_gemma3 is a gemma3 model" in load_error(hf_dir, "tiny_gemma3")


def test_a_config_that_is_not_json_is_named(hf_dir):
  (hf_dir / "config.json").write_text("{not json")
  assert load_error(hf_dir).startswith(f"{hf_dir / 'config.json'} does not read as JSON")


def test_a_tensor_of_the_wrong_shape_is_named_with_its_file(hf_dir):
  name = "model.layers.1.mlp.down_proj.weight"
  rewrite(hf_dir, lambda t: t.__setitem__(name, t[name][:, :256].copy()))
  message = load_error(hf_dir)
  assert (
    message
    == f"{hf_dir / 'model.safetensors'}: tensor {name} has shape (128, 256), model tiny expects (128, 512)"
  )


def test_a_tensor_of_the_wrong_dtype_is_named(hf_dir):
  name = "model.norm.weight"
  rewrite(hf_dir, lambda t: t.__setitem__(name, t[name].astype(np.int32)))
  assert f"tensor {name} is I32, not one of" in load_error(hf_dir)


def test_a_missing_tensor_is_named(hf_dir):
  name = "model.layers.2.self_attn.k_proj.weight"
  rewrite(hf_dir, lambda t: t.pop(name))
  assert load_error(hf_dir) == f"{hf_dir}: tensor {name} is missing (model tiny)"


def test_a_tensor_left_over_is_named(hf_dir):
  rewrite(hf_dir, lambda t: t.__setitem__("model.layers.0.self_attn.q_proj.bias", np.zeros(128, np.float32)))
  message = load_error(hf_dir)
  assert (
    message
    == f"{hf_dir / 'model.safetensors'}: tensor model.layers.0.self_attn.q_proj.bias is not part of model tiny"
  )


def test_nan_in_a_tensor_is_named(hf_dir):
  name = "model.layers.0.mlp.up_proj.weight"

  def poison(tensors):
    tensors[name] = tensors[name].copy()
    tensors[name][3, 4] = np.nan

  rewrite(hf_dir, poison)
  model = architectures.build_model("tiny")
  with pytest.raises(ValueError, match=f"model.safetensors: tensor {name} holds NaN or inf"):
    params_lib.load_gemma_checkpoint(hf_dir, model, shardings(model), name="tiny")


def test_a_directory_without_safetensors_says_what_it_found(hf_dir):
  (hf_dir / "model.safetensors").rename(hf_dir / "pytorch_model.bin")
  message = load_error(hf_dir)
  assert "neither model.safetensors nor model.safetensors.index.json" in message
  assert "found pytorch_model.bin: save with safe_serialization=True" in message


def test_an_export_into_an_existing_directory_refuses_unless_told_to_replace(
  tiny_model, tiny_params, tmp_path
):
  out = tmp_path / "export"
  out.mkdir()
  (out / "keep.txt").write_text("mine")
  kwargs = {
    "special_ids": {"bos_token_id": 2, "eos_token_id": [1], "pad_token_id": 0},
    "tokenizer_model": tokenizer_lib.EMBEDDED_MODEL_PATH,
  }
  with pytest.raises(ValueError, match="already exists"):
    hf_export.export(tiny_params, tiny_model.config, "gemma2", out, **kwargs)
  assert [p.name for p in out.iterdir()] == ["keep.txt"]
  hf_export.export(tiny_params, tiny_model.config, "gemma2", out, replace=True, **kwargs)
  assert sorted(p.name for p in out.iterdir()) == [
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.model",
    "tokenizer_config.json",
  ]
  assert [p.name for p in tmp_path.iterdir()] == ["export"]
