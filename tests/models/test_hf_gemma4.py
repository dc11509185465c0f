"""Gemma 4 Hugging Face checkpoints in and out, checked against transformers' own Gemma 4 forward.

transformers builds tiny random `Gemma4ForCausalLM` models from the config.json an export writes for
`tiny_gemma4` (per-layer input embeddings, layers reusing an earlier layer's KV cache with a
double-wide MLP, global layers with wider keys and partial rope) and `tiny_gemma4_moe` (routed
experts beside a dense branch, keys equal to values on global layers); every weight is drawn at
random, norms included. Logits agree within TOL of the largest in float32: 1e-4, not Gemma 2 / 3's
1e-5, because the errors measured are 1.3-3.7e-5 and stay at 7e-6 with both sides in float64 (the
gemma library computes parts of Gemma 4, its rope among them, in float32 whatever the dtype), while
one wrong convention moves them past 1e-2 (the last test).
"""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers

from eva_jax.models import architectures
from eva_jax.models import hf_export
from eva_jax.models import hf_layout
from eva_jax.models import params as params_lib
from eva_jax.models import tokenizer as tokenizer_lib

SPECIAL_IDS = {"bos_token_id": 2, "eos_token_id": [1, 106], "pad_token_id": 0}
COLUMNS = 40  # beyond the sliding window (16)
TOL = 1e-4


def random_hf_model(name: str, *, uniform_router_norm: bool, seed: int = 0):
  fields = hf_layout.make_config(
    architectures.build_model(name).config, "gemma4", dtype="float32", special_ids=SPECIAL_IDS
  )
  config = transformers.Gemma4TextConfig.from_dict(fields)
  config._attn_implementation = "eager"  # noqa: SLF001
  torch.manual_seed(seed)
  model = transformers.Gemma4ForCausalLM(config).eval()
  with torch.no_grad():
    for param_name, param in model.named_parameters():
      if "norm" in param_name:
        param.copy_(1.0 + torch.randn_like(param) * 0.2)  # Gemma 4 multiplies by the scale as stored
      else:
        param.copy_(torch.randn_like(param) * 0.05)
      if uniform_router_norm and "pre_feedforward_layernorm_2" in param_name:
        param.fill_(1.3)  # the two libraries route from different inputs unless it is uniform
    for layer in model.model.layers:
      layer.layer_scalar.fill_(0.9)
  return model


def hf_logits(model, ids):
  with torch.no_grad():
    return model(torch.tensor(ids)).logits.float().numpy()


def ours(model, params, ids):
  return np.asarray(model.apply({"params": params}, jnp.asarray(ids)).logits, np.float32)


def rel_err(got, want):
  return float(np.abs(got - want).max() / np.abs(want).max())


@pytest.fixture(scope="module")
def ids():
  return np.random.RandomState(0).randint(3, tokenizer_lib.EMBEDDED_VOCAB_SIZE, size=(2, COLUMNS))


def load(name, path, mesh):
  model = architectures.build_model(name)
  return model, params_lib.load_gemma_checkpoint(
    path, model, params_lib.shardings_for(model, mesh), name=name
  )


@pytest.mark.parametrize("name", ["tiny_gemma4", "tiny_gemma4_moe"])
def test_imported_logits_equal_transformers_forward_and_export_round_trips(name, ids, mesh1, tmp_path):
  theirs = random_hf_model(name, uniform_router_norm=True)
  theirs.save_pretrained(tmp_path / "hf")
  model, params = load(name, tmp_path / "hf", mesh1)
  want = hf_logits(theirs, ids)
  got = ours(model, params, ids)
  assert rel_err(got, want) <= TOL
  assert (got.argmax(-1) == want.argmax(-1)).all()
  out = hf_export.export(
    params,
    model.config,
    "gemma4",
    tmp_path / "out",
    dtype="float32",
    special_ids=SPECIAL_IDS,
    tokenizer_model=tokenizer_lib.EMBEDDED_MODEL_PATH,
  )
  back = transformers.AutoModelForCausalLM.from_pretrained(
    out, dtype=torch.float32, attn_implementation="eager"
  )
  assert rel_err(hf_logits(back.eval(), ids), want) <= TOL


def test_the_routers_read_different_inputs(ids, mesh1, tmp_path):
  """With a non-uniform experts' pre-norm the libraries route differently: a known difference."""
  theirs = random_hf_model("tiny_gemma4_moe", uniform_router_norm=False)
  theirs.save_pretrained(tmp_path / "hf")
  model, params = load("tiny_gemma4_moe", tmp_path / "hf", mesh1)
  assert rel_err(ours(model, params, ids), hf_logits(theirs, ids)) > 1e-3


def test_a_norm_read_with_the_gemma_2_offset_is_caught(ids, mesh1, tmp_path):
  """Gemma 4 stores norm scales as applied; reading one as 1 + scale breaks the comparison."""
  theirs = random_hf_model("tiny_gemma4", uniform_router_norm=True)
  theirs.save_pretrained(tmp_path / "hf")
  model, params = load("tiny_gemma4", tmp_path / "hf", mesh1)
  params["layer_3"]["post_per_layer_input_norm"]["scale"] = (
    params["layer_3"]["post_per_layer_input_norm"]["scale"] - 1.0
  )
  assert rel_err(ours(model, params, ids), hf_logits(theirs, ids)) > 1e-2
