"""Hugging Face checkpoints in and out, checked against transformers' own Gemma 2 / Gemma 3 forward.

Tiny random models are built by transformers from a config that mirrors an eva_jax architecture
(`tiny`: Gemma 2 structure; `tiny_gemma3`: Gemma 3's q/k norms, 5:1 sliding/global layers, two rope
bases, linear rope scaling), with every weight (norms included) drawn at random so that a
transposed weight or a wrong norm offset changes the logits. Logits are compared on the same ids
with `max |ours - theirs| <= 1e-5 * max |theirs|` in float32.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from eva_jax.models import architectures
from eva_jax.models import hf_export
from eva_jax.models import hf_format
from eva_jax.models import hf_import
from eva_jax.models import params as params_lib
from eva_jax.models import tokenizer as tokenizer_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.sampling import decode

NAMES = ("tiny", "tiny_gemma3")
SPECIAL_IDS = {"bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0}
COLUMNS = 80  # beyond both sliding windows (64 and 16)


def hf_classes(family):
  if family == "gemma2":
    return transformers.Gemma2Config, transformers.Gemma2ForCausalLM
  return transformers.Gemma3TextConfig, transformers.Gemma3ForCausalLM


def random_hf_model(name: str, seed: int = 0):
  """transformers' model of architecture `name`, every weight drawn at random (norms ~ N(0, 0.3))."""
  arch = architectures.ARCHITECTURES[name]
  fields = hf_format.make_config(
    architectures.build_model(name).config, arch.family, dtype="float32", special_ids=SPECIAL_IDS
  )
  config_cls, model_cls = hf_classes(arch.family)
  config = config_cls.from_dict(fields)  # the config.json an export writes, read by transformers
  config._attn_implementation = "eager"  # noqa: SLF001  (soft-capped attention is eager-only)
  torch.manual_seed(seed)
  model = model_cls(config).eval()
  with torch.no_grad():
    for param_name, param in model.named_parameters():
      param.copy_(torch.randn_like(param) * (0.3 if "norm" in param_name else 0.05))
  return model


def hf_logits(model, ids) -> np.ndarray:
  with torch.no_grad():
    return model(torch.tensor(ids)).logits.float().numpy()


def ours(model, params, ids) -> np.ndarray:
  return np.asarray(model.apply({"params": params}, jnp.asarray(ids)).logits, np.float32)


def assert_close(got, want, tol=1e-5):
  err = np.abs(got - want).max() / np.abs(want).max()
  assert err <= tol, f"max |diff| / max |logit| = {err:.2e} > {tol}"


@pytest.fixture(scope="module")
def ids():
  return np.random.RandomState(0).randint(3, tokenizer_lib.EMBEDDED_VOCAB_SIZE, size=(2, COLUMNS))


@pytest.fixture(scope="module", params=NAMES)
def saved(request, tmp_path_factory):
  """(name, transformers model, its save_pretrained directory)."""
  name = request.param
  model = random_hf_model(name)
  path = tmp_path_factory.mktemp(name) / "hf"
  model.save_pretrained(path)
  return name, model, path


def load(name, path, mesh):
  model = architectures.build_model(name)
  shardings = params_lib.shardings_for(model, mesh)
  return model, params_lib.load_gemma_checkpoint(path, model, shardings, name=name)


def test_imported_logits_equal_transformers_forward(saved, mesh1, ids):
  name, hf_model, path = saved
  model, params = load(name, path, mesh1)
  assert_close(ours(model, params, ids), hf_logits(hf_model, ids))


def test_greedy_decoding_matches_transformers_generate(saved, mesh1, ids):
  name, hf_model, path = saved
  model, params = load(name, path, mesh1)
  prompt = ids[:1, :24]
  settings = decode.DecodeSettings(
    num_samples=1, max_new_tokens=16, temperature=0.0, top_k=0, top_p=1.0, stop_tokens=(-1,)
  )
  out = decode.jitted_generate(model, settings)(
    params, jnp.asarray(prompt), jnp.ones_like(prompt, bool), jax.random.key(0)
  )
  with torch.no_grad():
    theirs = hf_model.generate(
      torch.tensor(prompt),
      max_new_tokens=16,
      min_new_tokens=16,
      do_sample=False,
      eos_token_id=None,
      pad_token_id=0,
    )
  np.testing.assert_array_equal(np.asarray(out["tokens"][0]), theirs[0, prompt.shape[1] :].numpy())


@pytest.mark.devices(8)
def test_sharded_save_loads_onto_eight_devices(saved, mesh1, tmp_path, ids):
  name, hf_model, _ = saved
  hf_model.save_pretrained(tmp_path, max_shard_size="100KB")
  assert len(list(tmp_path.glob("model-*-of-*.safetensors"))) > 3
  mesh8 = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  model, params = load(name, tmp_path, mesh8)
  embedding = params["embedder"]["input_embedding"]
  assert len(embedding.sharding.device_set) == 8
  assert max(s.data.nbytes for s in embedding.addressable_shards) < embedding.nbytes
  assert_close(ours(model, jax.device_put(params, jax.devices()[0]), ids), hf_logits(hf_model, ids))


def test_bfloat16_save_imports_to_the_same_weights(saved, tmp_path, mesh1, ids):
  name = saved[0]
  rounded = random_hf_model(name)
  with torch.no_grad():  # the weights only: rope frequencies stay float32
    for param in rounded.parameters():
      param.copy_(param.to(torch.bfloat16).float())
  want = hf_logits(rounded, ids)
  rounded.to(torch.bfloat16).save_pretrained(tmp_path)
  model, params = load(name, tmp_path, mesh1)
  assert_close(ours(model, params, ids), want)


def test_exported_params_load_in_transformers_with_the_same_logits(saved, mesh1, tmp_path, ids):
  name, _, path = saved
  model, params = load(name, path, mesh1)
  out = tmp_path / "export"
  hf_export.export(
    params,
    model.config,
    architectures.ARCHITECTURES[name].family,
    out,
    dtype="float32",
    special_ids=SPECIAL_IDS,
    tokenizer_model=tokenizer_lib.EMBEDDED_MODEL_PATH,
    max_shard_bytes=300_000,
  )
  index = json.loads((out / hf_import.INDEX).read_text())
  assert len(set(index["weight_map"].values())) > 1
  assert sorted(p.name for p in out.iterdir() if not p.name.startswith("model-")) == [
    "config.json",
    "generation_config.json",
    "model.safetensors.index.json",
    "tokenizer.model",
    "tokenizer_config.json",
  ]
  assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no partial directory left behind
  theirs = transformers.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
  assert type(theirs).__name__ == hf_format.FAMILIES[architectures.ARCHITECTURES[name].family]["architecture"]
  assert_close(hf_logits(theirs, ids), ours(model, params, ids))
  tokenizer = transformers.AutoTokenizer.from_pretrained(out)
  text = "the cat sat on the mat, twice"
  assert tokenizer.encode(text, add_special_tokens=False) == tokenizer_lib.load_tokenizer("embedded").encode(
    text
  )


def test_bfloat16_export_holds_the_rounded_weights(saved, mesh1, tmp_path, ids):
  name, _, path = saved
  model, params = load(name, path, mesh1)
  out = hf_export.export(
    params,
    model.config,
    architectures.ARCHITECTURES[name].family,
    tmp_path / "bf16",
    special_ids=SPECIAL_IDS,
    tokenizer_model=tokenizer_lib.EMBEDDED_MODEL_PATH,
  )
  assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
  theirs = transformers.AutoModelForCausalLM.from_pretrained(
    out, dtype=torch.float32, attn_implementation="eager"
  )
  rounded = jax.tree.map(lambda x: x.astype(jnp.bfloat16).astype(jnp.float32), params)
  assert_close(hf_logits(theirs.eval(), ids), ours(model, rounded, ids))


def test_the_comparison_catches_a_transposed_weight_and_a_norm_offset(saved, mesh1, ids):
  """The tolerance above is tight enough that one wrong mapping fails it."""
  name, hf_model, path = saved
  model, params = load(name, path, mesh1)
  want = hf_logits(hf_model, ids)
  attn = params["layer_1"]["attn"]["attn_vec_einsum"][
    "w"
  ]  # (heads, head_dim, width): width = heads * head_dim
  heads, head_dim, width = attn.shape
  transposed = attn.reshape(width, width).T.reshape(heads, head_dim, width)
  broken = jax.tree.map(lambda x: x, params)
  broken["layer_1"]["attn"]["attn_vec_einsum"]["w"] = transposed
  with pytest.raises(AssertionError):
    assert_close(ours(model, broken, ids), want)
  broken = jax.tree.map(lambda x: x, params)
  broken["final_norm"]["scale"] = (
    params["final_norm"]["scale"] - 1.0
  )  # the norm read as `scale` not `1 + scale`
  with pytest.raises(AssertionError):
    assert_close(ours(model, broken, ids), want)
