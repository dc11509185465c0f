from gemma import gm
from gemma.gm.ckpts import _compat
import jax
import numpy as np
import pytest

from eva_jax.models import architectures
from eva_jax.models import params as params_lib


def _assert_trees_equal(a, b):
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_own_checkpoint_round_trip(tiny_model, tiny_params, mesh1, tmp_path):
  params_lib.save_params(tmp_path / "ckpt", tiny_params)
  restored = params_lib.restore_params(
    tmp_path / "ckpt", tiny_model, params_lib.shardings_for(tiny_model, mesh1)
  )
  _assert_trees_equal(tiny_params, restored)


def _official_flat_layout(params):
  """The layout of the released Gemma checkpoints: {"transformer/layer_0/attn/q_einsum": {"w": ...}}."""
  flat = _compat.flatten_and_remap_params(jax.device_get(params))
  return {f"transformer/{name}": value for name, value in flat.items()}


@pytest.mark.parametrize("layout", ["official_flat", "nested"])
def test_loads_checkpoints_written_in_gemma_format(tiny_model, tiny_params, mesh1, tmp_path, layout):
  tree = _official_flat_layout(tiny_params) if layout == "official_flat" else jax.device_get(tiny_params)
  assert ("transformer/layer_0/mlp/gating_einsum" in tree) == (layout == "official_flat")
  gm.ckpts.save_params(tree, tmp_path / "gemma", wait_until_finished=True)
  loaded = params_lib.load_gemma_checkpoint(
    tmp_path / "gemma", tiny_model, params_lib.shardings_for(tiny_model, mesh1), name="tiny"
  )
  _assert_trees_equal(tiny_params, loaded)


def test_checkpoint_of_another_architecture_is_rejected(tiny_params, mesh1, tmp_path):
  gm.ckpts.save_params(_official_flat_layout(tiny_params), tmp_path / "gemma", wait_until_finished=True)
  small = architectures.build_model("small")
  with pytest.raises(ValueError, match="does not match"):
    params_lib.load_gemma_checkpoint(
      tmp_path / "gemma", small, params_lib.shardings_for(small, mesh1), name="small"
    )


def test_missing_checkpoints_raise_with_the_path(tiny_model, mesh1, tmp_path):
  shardings = params_lib.shardings_for(tiny_model, mesh1)
  with pytest.raises(FileNotFoundError, match="nope"):
    params_lib.load_gemma_checkpoint(tmp_path / "nope", tiny_model, shardings, name="tiny")
  with pytest.raises(FileNotFoundError, match="nope"):
    params_lib.restore_params(tmp_path / "nope", tiny_model, shardings)


@pytest.mark.parametrize(
  "name,vocab,layers",
  [("gemma2_2b", 256128, 26), ("gemma2_9b", 256128, 42), ("gemma2_27b", 256128, 46), ("gemma3_1b", 262144, 26),
   ("gemma3_4b", 262144, 34), ("gemma3_12b", 262144, 48), ("gemma3_27b", 262144, 62)],
)  # fmt: skip
def test_real_architectures_have_published_shapes(name, vocab, layers):
  model = architectures.build_model(name, "bfloat16")
  abstract = params_lib.abstract_params(model)  # shapes only: nothing is allocated
  assert abstract["embedder"]["input_embedding"].shape[0] == vocab
  assert sum(k.startswith("layer_") for k in abstract) == layers
  assert "vision_encoder" not in abstract  # text-only
  assert abstract["layer_0"]["attn"]["q_einsum"]["w"].dtype == np.dtype("bfloat16")


def test_gemma2_9b_parameter_count():
  abstract = params_lib.abstract_params(architectures.build_model("gemma2_9b", "bfloat16"))
  count = sum(x.size for x in jax.tree.leaves(abstract))
  assert 9.0e9 < count < 9.5e9  # 9.24B published


def test_unknown_names_are_rejected():
  with pytest.raises(ValueError, match="unknown model 'gemma9'"):
    architectures.build_model("gemma9")
  with pytest.raises(ValueError, match="unknown param dtype"):
    architectures.build_model("tiny", "float16")
