"""Entry point: `python -m eva_jax.main --config=configs/X.py --workdir=DIR [--config.a.b=v]`."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow (pulled in by gemma/TFDS) is chatty.

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from eva_jax import config as config_lib
from eva_jax import model_check
from eva_jax.rewards import config as reward_config
from eva_jax.rewards import train_job as reward_train_job

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, pools and metrics.")
_MODE = flags.DEFINE_enum(
  "mode",
  "check",
  ["check", "train_reward_model"],
  "check: the model check (eva_jax/model_check.py); train_reward_model: Bradley-Terry reward-model "
  "training (eva_jax/rewards/train_job.py, configs/reward_model.py).",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO.
  try:
    cfg = config_lib.parse(_CONFIG.value, jax.device_count())
    training = reward_config.parse_training(_CONFIG.value) if _MODE.value == "train_reward_model" else None
  except config_lib.ConfigError as e:
    sys.exit(f"eva_jax: invalid config: {e}")
  if training is not None:
    reward_train_job.run(cfg, training, _WORKDIR.value, _CONFIG.value)
  else:
    model_check.run(cfg, _WORKDIR.value)


if __name__ == "__main__":
  app.run(main)
