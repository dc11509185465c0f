"""Command line of the reward server: serve a task or reward-model source over HTTP.

    python -m eva_jax.jobs.serve_rewards --config=configs/quickstart.py --host=0.0.0.0 --port=8000 \
        [--api_key_env=EVA_REWARD_KEY] [--config.reward.kind=model --config.reward.checkpoint=DIR]

Prints `serving <kind> rewards at http://HOST:PORT/score` once it listens (port 0 picks a free
one), then serves until interrupted. The protocol is documented in `remote.py`; the same server
answers OpenRLHF's remote reward model at `/get_reward` (`--remote_rm_url http://HOST:PORT/get_reward`),
reading its texts with `config.reward.query_template` (the chat template the trainer applies) and
answering a batch with a non-finite reward with a 422 under `config.reward.nonfinite` (`server.py`).
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow (pulled in by gemma/TFDS) is chatty.

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from eva_jax import config as config_lib
from eva_jax.parallel import mesh as mesh_lib
from eva_jax.rewards import config as reward_config
from eva_jax.rewards import credentials
from eva_jax.rewards import factory
from eva_jax.rewards import server as server_lib

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Interface to listen on (0.0.0.0 = all).")
_PORT = flags.DEFINE_integer("port", 8000, "Port to listen on; 0 = a free port (printed at start).")
_API_KEY_ENV = flags.DEFINE_string(
  "api_key_env", "", "NAME of the env variable holding the bearer token to require."
)
_MAX_PAIRS = flags.DEFINE_integer("max_pairs", 4096, "Largest batch one request may carry.")
flags.mark_flags_as_required(["config"])


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  try:
    cfg = config_lib.parse(_CONFIG.value, jax.device_count())
    reward_cfg = reward_config.parse(_CONFIG.value)
    api_key = credentials.read_api_key(_API_KEY_ENV.value, "--api_key_env")
  except ValueError as e:  # ConfigError is a ValueError.
    sys.exit(f"eva_jax.jobs.serve_rewards: invalid config: {e}")
  if reward_cfg.kind == "remote":
    sys.exit(
      "eva_jax.jobs.serve_rewards: config.reward.kind is 'remote'; serve a task or model source instead"
    )
  mesh = mesh_lib.make_mesh(dict(zip(mesh_lib.AXES, cfg.mesh.shape)))
  source = factory.make_reward_source(reward_cfg, mesh=mesh, rules=cfg.mesh.rules, progress=False)
  server = server_lib.make_server(
    source,
    host=_HOST.value,
    port=_PORT.value,
    kind=reward_cfg.kind,
    api_key=api_key,
    max_pairs=_MAX_PAIRS.value,
    query_template=reward_cfg.query_template,
    nonfinite=reward_cfg.nonfinite,
  )
  print(f"eva_jax.jobs.serve_rewards: serving {reward_cfg.kind} rewards at {server.url}", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
    source.close()


if __name__ == "__main__":
  app.run(main)
