import pytest

from configs import quickstart
from eva_jax import config as config_lib


def test_quickstart_config_parses():
  cfg = config_lib.parse(quickstart.get_config(), num_devices=8)
  assert cfg.model.name == "tiny" and cfg.model.tokenizer_kind == "embedded"
  assert cfg.mesh.shape == (8, 1, 1)


def _with(**overrides):
  config = quickstart.get_config()
  config.unlock()
  for field, value in overrides.items():
    node = config
    *parents, leaf = field.split("__")
    for parent in parents:
      node = node[parent]
    node._fields[leaf] = value  # bypass ConfigDict's own type lock: configs can be written wrong too
  return config


@pytest.mark.parametrize(
  "overrides,message",
  [
    ({"model__name": "gemma9"}, "config.model.name: 'gemma9' is not one of"),
    ({"model__param_dtype": "float16"}, "config.model.param_dtype: 'float16' is not one of"),
    ({"model__logprob_chunk": 0}, "config.model.logprob_chunk: 0 must be >= 1"),
    ({"model__logprob_chunk": "8"}, "config.model.logprob_chunk: expected int"),
    ({"seed": -1}, "config.seed: -1 must be >= 0"),
    ({"seed": True}, "config.seed: expected int"),
    ({"mesh__shape": {"data": 3, "fsdp": -1}}, "config.mesh.shape: mesh .* needs a multiple of 3 devices"),
    ({"mesh__shape": {"data": 2}}, "config.mesh.shape: .*uses 2 devices; there are 8"),
    ({"mesh__shape": {"data": "2"}}, "config.mesh.shape.data: expected int"),
    ({"mesh__rules": (("vocab", "model"),)}, "config.mesh.rules: .*mesh axis 'model'"),
    ({"check__num_problems": 0}, "config.check.num_problems: 0 must be in"),
    ({"loop__min_chosen_reward": float("nan")}, "config.loop.min_chosen_reward: expected a number or -inf"),
    ({"loop__max_train_pairs": -1}, "config.loop.max_train_pairs: -1 must be >= 0"),
    ({"loop__top_p": 0.0}, r"config.loop.top_p: must be in \(0, 1\]"),
    ({"eval__top_p": 0.0}, r"config.eval.top_p: must be in \(0, 1\]"),
    ({"eval__export__top_p": 0}, r"config.eval.export.top_p: must be in \(0, 1\]"),
    ({"creator__llm__top_p": 0.0}, r"config.creator.llm.top_p: must be in \(0, 1\]"),
    ({"solver__max_nonfinite_steps": 0}, "config.solver.max_nonfinite_steps: 0 must be >= 1"),
    ({"model__name": "gemma2_9b"}, "config.model.tokenizer: model 'gemma2_9b' needs the path"),
    (
      {"model__name": "gemma2_9b", "model__tokenizer": "/t.model"},
      "config.model.checkpoint: model 'gemma2_9b'",
    ),
  ],
)
def test_errors_name_the_field(overrides, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.parse(_with(**overrides), num_devices=8)


def test_missing_field_is_named():
  config = quickstart.get_config()
  config.unlock()
  del config.model["logprob_chunk"]
  with pytest.raises(config_lib.ConfigError, match="config.model.logprob_chunk: missing"):
    config_lib.parse(config, num_devices=1)


def test_gemma2_9b_config_parses_once_paths_are_given():
  from configs import gemma2_9b

  config = gemma2_9b.get_config()
  with pytest.raises(config_lib.ConfigError, match="config.model.tokenizer"):
    config_lib.parse(config, num_devices=8)
  config.model.tokenizer, config.model.checkpoint = "/t.model", "/ckpt"
  cfg = config_lib.parse(config, num_devices=8)
  assert cfg.model.tokenizer_kind == "gemma2" and cfg.mesh.shape == (1, 2, 4)


def test_the_task_is_named_once_and_sections_may_override_it():
  config = quickstart.get_config()
  assert config.task == "addition_lsb" and config.creator.task == config.eval.task == ""
  assert config.reward.task == "addition_lsb_exact"  # the quickstart trains on the binary reward
  cfg = config_lib.parse(config, num_devices=8)
  assert cfg.creator.task == cfg.eval.task == "addition_lsb" and cfg.reward.task == "addition_lsb_exact"
  assert config_lib.flatten(config)["creator.task"] == "addition_lsb"  # the resolved name is pinned
  config.reward.task = ""
  assert config_lib.parse(config, num_devices=8).reward.task == "addition_lsb"
  config.task = "chess"
  with pytest.raises(config_lib.ConfigError, match=r"config\.(reward|creator)\.task: .*'chess'"):
    config_lib.parse(config, num_devices=8)
  config.creator.task = config.reward.task = config.eval.task = "addition_lsb"  # each section overrides it
  assert config_lib.parse(config, num_devices=8).eval.task == "addition_lsb"


def test_the_shipped_base_refuses_a_task_in_another_prompt_format():
  config = quickstart.get_config()
  config.task = "addition"  # operands as people write them: not what the base was trained to read
  with pytest.raises(
    config_lib.ConfigError, match=r"config.creator.task: the shipped base reads the prompts of"
  ):
    config_lib.parse(config, num_devices=8)
  config.model.init = "random"
  assert config_lib.parse(config, num_devices=8).creator.task == "addition"


def test_the_shipped_base_needs_the_tiny_model():
  config = quickstart.get_config()
  assert config.model.init == "base" and config.loop.warmstart_steps == 0
  config.model.name = "small"
  with pytest.raises(config_lib.ConfigError, match="config.model.init: the shipped base is a 'tiny' model"):
    config_lib.parse(config, num_devices=8)
  config.model.init = "random"
  assert config_lib.parse(config, num_devices=8).model.init == "random"


def test_a_hugging_face_checkpoint_supplies_its_own_tokenizer(tmp_path):
  (tmp_path / "config.json").write_text("{}")
  overrides = {"model__name": "gemma3_270m", "model__checkpoint": str(tmp_path)}
  with pytest.raises(
    config_lib.ConfigError, match="a Hugging Face model.checkpoint directory supplies its own"
  ):
    config_lib.parse(_with(**overrides), num_devices=8)
  (tmp_path / "tokenizer.model").write_bytes(b"")
  assert config_lib.parse(_with(**overrides), num_devices=8).model.tokenizer == str(
    tmp_path / "tokenizer.model"
  )
  chosen = config_lib.parse(_with(**overrides, model__tokenizer="/mine.model"), num_devices=8)
  assert chosen.model.tokenizer == "/mine.model"
