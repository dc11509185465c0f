"""Entry point: `python -m eva_jax.main --config=configs/X.py --workdir=DIR [--config.a.b=v]`.

Every failure a user can cause ends in one line on stderr, `eva_jax: <what was wrong and where>`,
and a non-zero exit: bad config values, missing files, an empty `--workdir`, a work directory that
is a file or cannot be written (checked before any model is built), unreachable servers, damaged
state files or checkpoints. A relative `--workdir` is made absolute first. `--verbose` (or
EVA_VERBOSE=1) shows the full traceback instead.
"""

import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow (pulled in by gemma/TFDS) is chatty.
_STOPPED = 75  # = preemption.EXIT_CODE, which cannot be imported yet


def _stop_before_the_loop(signum, frame):
  """SIGTERM outside the loop's own handler (imports, set-up, exit): nothing is being saved."""
  del signum, frame
  print(
    "eva_jax: stopped on SIGTERM outside the eva loop (nothing was being saved); rerun the same command",
    file=sys.stderr,
    flush=True,
  )
  os._exit(_STOPPED)  # noqa: SLF001  (an import may be half done: no clean-up to run)


# Installed before the heavy imports (JAX, TensorFlow: seconds), so a stop there is reported too;
# the imports below follow it on purpose (E402).
signal.signal(signal.SIGTERM, _stop_before_the_loop)

from absl import app  # noqa: E402
from absl import flags  # noqa: E402
from absl import logging  # noqa: E402
import jax  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from eva_jax import config as config_lib  # noqa: E402
from eva_jax import state_files  # noqa: E402
from eva_jax.jobs import evaluate  # noqa: E402
from eva_jax.jobs import export_hf  # noqa: E402
from eva_jax.jobs import model_check  # noqa: E402
from eva_jax.jobs import train  # noqa: E402
from eva_jax.jobs import train_reward_model  # noqa: E402
from eva_jax.loop import preemption  # noqa: E402
from eva_jax.parallel import distributed  # noqa: E402
from eva_jax.rewards import config as reward_config  # noqa: E402
from eva_jax.scale import memory_plan  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, pools and metrics.")
_MODE = flags.DEFINE_enum(
  "mode",
  "train",
  ["train", "eval", "check", "train_reward_model", "plan", "export_hf"],
  "train: the eva run (eva_jax/jobs/train.py, eva_jax/loop/runner.py; resumes a run in --workdir); eval: "
  "held-out evaluation and benchmark exports of the run in --workdir (config.eval, eva_jax/jobs/evaluate.py); check: the model check "
  "(eva_jax/jobs/model_check.py); train_reward_model: Bradley-Terry reward-model training "
  "(eva_jax/jobs/train_reward_model.py, configs/reward_model.py); plan: per-device memory on "
  "--plan_topology from shapes alone (eva_jax/scale/memory_plan.py); export_hf: a checkpoint of the "
  "run in --workdir as a Hugging Face model directory --export_dir (eva_jax/jobs/export_hf.py).",
)
_FORCE = flags.DEFINE_bool("force", False, "Resume a run even if pinned config fields changed.")
# Multi-host (eva_jax/parallel/distributed.py); unset flags fall back to EVA_* environment variables.
_DISTRIBUTED = flags.DEFINE_enum(
  "distributed", None, list(distributed.MODES), "Join a multi-process run: auto (default), on or off."
)
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-process).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0 .. num_processes - 1.")
_PLAN_TOPOLOGY = flags.DEFINE_string(
  "plan_topology", "v5e-64", "--mode=plan: v5e-64, v5p-128, h100-8, 64x16 ..."
)
_EXPORT_DIR = flags.DEFINE_string(
  "export_dir", None, "--mode=export_hf: the Hugging Face directory to write."
)
_STEP = flags.DEFINE_integer(
  "step", None, "--mode=export_hf: the run checkpoint to export; default the newest."
)
_EXPORT_DTYPE = flags.DEFINE_enum(
  "export_dtype", "bfloat16", ["bfloat16", "float32"], "--mode=export_hf: dtype of the written tensors."
)
_REPLACE = flags.DEFINE_bool("replace", False, "--mode=export_hf: overwrite an existing --export_dir.")
_VERBOSE = flags.DEFINE_bool(
  "verbose", False, "On an error, show the full traceback, not one line (also EVA_VERBOSE=1)."
)
flags.mark_flags_as_required(["config", "workdir"])


def _one_line(error: BaseException) -> str:
  """`eva_jax: ...` for an error: its message's first line (library messages run to 150 lines)."""
  lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
  first = lines[0] if lines else ""
  if isinstance(error, ValueError | FileNotFoundError) and first:
    message = first  # our own errors: the message names what and where
  else:
    message = f"{type(error).__name__}: {first}" if first else type(error).__name__
  more = f" (+{len(lines) - 1} more lines; --verbose shows them)" if len(lines) > 1 else ""
  return f"eva_jax: {message[:1000]}{more}"


def _verbose() -> bool:
  return _VERBOSE.value or os.environ.get("EVA_VERBOSE", "") not in ("", "0")


def main(argv):
  del argv
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every file it writes at INFO.
  try:  # before anything is built or written: orbax refuses a relative path only when it saves
    workdir = state_files.resolve_workdir(_WORKDIR.value)
  except ValueError as e:
    sys.exit(f"eva_jax: {e}")
  if _MODE.value == "plan":  # Shapes only: needs no devices, checkpoint or tokenizer.
    try:
      memory_plan.run(_CONFIG.value, _PLAN_TOPOLOGY.value, workdir)
    except ValueError as e:
      sys.exit(f"eva_jax: plan: {e}")
    return
  try:  # Before anything touches a device: afterwards jax.devices() spans every process.
    distributed.initialize(
      distributed.settings_from(
        _DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value
      )
    )
  except ValueError as e:
    sys.exit(f"eva_jax: distributed set-up: {e}")
  try:
    cfg = config_lib.parse(_CONFIG.value, jax.device_count())
    training = reward_config.parse_training(_CONFIG.value) if _MODE.value == "train_reward_model" else None
  except config_lib.ConfigError as e:
    sys.exit(f"eva_jax: invalid config: {e}")
  try:
    if _MODE.value not in ("eval", "export_hf"):  # these read an existing run; the others write into it
      state_files.check_workdir(workdir)
    if training is not None:
      train_reward_model.run(cfg, training, workdir, _CONFIG.value)
    elif _MODE.value == "check":
      model_check.run(cfg, workdir)
    elif _MODE.value == "eval":
      evaluate.run(cfg, workdir)
    elif _MODE.value == "export_hf":
      export_hf.run(
        cfg, workdir, _EXPORT_DIR.value, step=_STEP.value, dtype=_EXPORT_DTYPE.value, replace=_REPLACE.value
      )
    else:
      train.run(cfg, workdir, config_lib.flatten(_CONFIG.value), force=_FORCE.value)
  except preemption.Preempted as e:
    if distributed.is_main_process():
      print(f"eva_jax: stopped on SIGTERM {e}; rerun the same command to resume", file=sys.stderr)
    sys.exit(preemption.EXIT_CODE)
  except Exception as e:  # one line for the user; the traceback on request
    if _verbose():
      raise
    sys.exit(_one_line(e))


if __name__ == "__main__":
  app.run(main)
