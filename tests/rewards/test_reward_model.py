"""The JAX reward model on the real tiny Gemma: head on the last real token, padding- and mesh-invariant scores,
orbax round trip through the "model" reward source."""

import numpy as np
import pytest

from eva_jax.models import batching
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.rewards import config as reward_config
from eva_jax.rewards import factory
from eva_jax.rewards import model_source
from eva_jax.rewards import reward_model
from eva_jax.tasks import get_task

TASK = get_task("addition")
PROMPTS = TASK.seed_prompts(6, 0) + TASK.eval_prompts(1)[-6:]
RESPONSES = [TASK.reference(p) if i % 2 else f"Reversed sum: {i}{i}" for i, p in enumerate(PROMPTS)]


@pytest.fixture(scope="module")
def source1(tiny_model, reward_params, tokenizer, mesh1):
  return model_source.ModelRewardSource(tiny_model, reward_params, tokenizer, mesh1, batch_size=8)


@pytest.fixture(scope="module")
def scores1(source1):
  return source1.score(PROMPTS, RESPONSES)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, reward_params):
  path = tmp_path_factory.mktemp("rm") / "reward_model"
  reward_model.save(path, reward_params, "tiny", "float32")
  return path


def test_reward_is_the_head_on_the_hidden_state_of_the_last_token(
  tiny_model, reward_params, tokenizer, source1, scores1
):
  assert scores1.dtype == np.float32 and scores1.shape == (12,)
  assert len(set(scores1.tolist())) == 12  # every pair scores differently: the head reads real content
  # Reference: one unpadded row through gemma's own forward (its default positions and causal mask).
  batch = batching.make_batch(tokenizer, PROMPTS[:1], RESPONSES[:1], length_multiple=1)
  out = tiny_model.apply({"params": reward_params["backbone"]}, batch.tokens, return_hidden_states=True)
  head = reward_params["head"]
  expected = float(np.asarray(out.hidden_states)[0, -1] @ np.asarray(head["w"]) + np.asarray(head["b"]))
  assert batch.tokens[0, -1] == tokenizer.special_tokens.END_OF_TURN
  assert scores1[0] == pytest.approx(expected, rel=1e-5, abs=1e-5)
  # A pair's score does not depend on its batch or padding.
  alone = source1.score(PROMPTS[5:6], RESPONSES[5:6])
  np.testing.assert_allclose(alone, scores1[5:6], rtol=1e-5, atol=1e-5)


def test_score_tokens_takes_any_padding_layout(tokenizer, source1, scores1):
  batch = batching.make_batch(tokenizer, PROMPTS[:4], RESPONSES[:4], length_multiple=16, row_multiple=8)
  np.testing.assert_allclose(source1.score_tokens(batch), scores1[:4], rtol=1e-5, atol=1e-5)


def test_checkpoint_round_trip_through_the_model_source(checkpoint, mesh1, scores1):
  assert reward_model.read_metadata(checkpoint) == {
    "model_name": "tiny",
    "param_dtype": "float32",
    "embed_dim": 128,
  }
  cfg = reward_config.RewardConfig(kind="model", checkpoint=str(checkpoint), batch_size=8)
  source = factory.make_reward_source(cfg, mesh=mesh1)
  np.testing.assert_array_equal(source.score(PROMPTS, RESPONSES), scores1)
  source.close()
  assert source.params is None


def test_sharded_scores_equal_unsharded(checkpoint, scores1):
  mesh8 = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  source = model_source.load_model_source(checkpoint, mesh=mesh8, batch_size=8)
  params = source.params
  # The params really are split: embedding over tensor x fsdp, MLP over tensor, head over fsdp.
  embedding = params["backbone"]["embedder"]["input_embedding"]
  assert embedding.addressable_shards[0].data.shape == (256, 64)
  assert params["backbone"]["layer_0"]["mlp"]["linear"].addressable_shards[0].data.shape == (256, 64)
  assert params["head"]["w"].addressable_shards[0].data.shape == (64,)
  scores8 = source.score(PROMPTS, RESPONSES)
  # Equal up to float32 reduction order (the sharded matmuls sum in another order).
  np.testing.assert_allclose(scores8, scores1, rtol=1e-5, atol=1e-5)


def test_checkpoint_errors(tmp_path, checkpoint, reward_params, mesh1):
  with pytest.raises(FileExistsError, match="already exists"):
    reward_model.save(checkpoint, reward_params, "tiny", "float32")
  with pytest.raises(FileNotFoundError, match=f"{tmp_path}/reward_model.json does not exist"):
    model_source.load_model_source(tmp_path, mesh=mesh1)
  wrong = tmp_path / "wrong"
  reward_model.save(wrong, reward_params, "tiny", "float32")
  (wrong / reward_model.METADATA_FILE).write_text('{"model_name": "small", "param_dtype": "float32"}')
  with pytest.raises(ValueError, match=f"checkpoint {wrong} does not match a small reward model") as err:
    model_source.load_model_source(wrong, mesh=mesh1)
  assert len(str(err.value)) < 500
  (wrong / reward_model.METADATA_FILE).write_text('{"model_name": "gemma2_2b", "param_dtype": "bfloat16"}')
  with pytest.raises(ValueError, match="reward model 'gemma2_2b' needs its Gemma tokenizer"):
    model_source.load_model_source(wrong, mesh=mesh1)
