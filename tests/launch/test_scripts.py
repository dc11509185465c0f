"""launch/tpu.sh and launch/gpu.sh: the commands they run (a recording stand-in for gcloud; dry runs) and shellcheck."""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile

import pytest

from tests.hang_guard import HANG_GUARD_S

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TPU_SH = os.path.join(ROOT, "launch", "tpu.sh")
GPU_SH = os.path.join(ROOT, "launch", "gpu.sh")
TPU_ENV = {
  "PROJECT": "my-proj",
  "ZONE": "us-west4-a",
  "TPU_NAME": "eva-pod",
  "ACCELERATOR_TYPE": "v5litepod-64",
  "WORKDIR": "gs://bucket/run 1",
}
GCLOUD_TPU = ["gcloud", "compute", "tpus", "tpu-vm"]
WHERE = ["--project=my-proj", "--zone=us-west4-a"]
# The stand-in for gcloud: records its arguments, keeps a copy of what `scp` sends, and answers
# `describe` with success iff FAKE_TPU_EXISTS=1.
FAKE_GCLOUD = f"""#!{sys.executable}
import json, os, shutil, sys
log = os.environ["FAKE_GCLOUD_LOG"]
with open(log, "a") as f:
  f.write(json.dumps(sys.argv[1:]) + "\\n")
if "scp" in sys.argv:
  shutil.copy(sys.argv[sys.argv.index("scp") + 1], log + ".sent")
sys.exit(0 if "describe" not in sys.argv or os.environ.get("FAKE_TPU_EXISTS") == "1" else 1)
"""


@pytest.fixture
def fake_gcloud(tmp_path):
  """PATH with the recording gcloud first; returns a function reading the recorded calls."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  (bin_dir / "gcloud").write_text(FAKE_GCLOUD)
  (bin_dir / "gcloud").chmod(0o755)
  log = tmp_path / "gcloud.jsonl"
  env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_GCLOUD_LOG": str(log), "TMPDIR": str(tmp_path)}

  def calls():
    return [["gcloud", *json.loads(line)] for line in log.read_text().splitlines()] if log.exists() else []

  return env, calls


def _tpu(*args, env=None):
  return subprocess.run(
    ["bash", TPU_SH, *args],
    env={**os.environ, **TPU_ENV, **(env or {})},
    capture_output=True,
    text=True,
    timeout=HANG_GUARD_S,
  )


def _remote(call: list[str]) -> list[str]:
  """The words of the command an `ssh --command=...` call runs on the workers."""
  (command,) = [a.removeprefix("--command=") for a in call if a.startswith("--command=")]
  return shlex.split(command)


EXTRA = ("--config.loop.rounds=2", "--config.model.checkpoint=gs://b/it's a dir")


def test_dry_run_prints_every_step_and_runs_nothing(fake_gcloud):
  env, calls = fake_gcloud
  result = _tpu("--dry-run", *EXTRA, env=env)
  assert result.returncode == 0, result.stderr
  assert calls() == []  # not even `describe`
  lines = [shlex.split(line) for line in result.stdout.splitlines()]
  create, tar, scp, unpack, install, run = lines
  assert create == [
    *GCLOUD_TPU,
    "create",
    "eva-pod",
    *WHERE,
    "--accelerator-type=v5litepod-64",
    "--version=v2-alpha-tpuv5-lite",
  ]
  assert tar[:2] == ["tar", "-czf"] and tar[3:5] == ["-C", ROOT] and "--exclude=.venv" in tar
  assert scp == [*GCLOUD_TPU, "scp", tar[2], "eva-pod:eva_jax_code.tar.gz", *WHERE, "--worker=all"]
  for call in (unpack, install, run):
    assert call[: len(GCLOUD_TPU) + 2] == [*GCLOUD_TPU, "ssh", "eva-pod"] and "--worker=all" in call
  assert "tar -xzf eva_jax_code.tar.gz -C eva_jax" in " ".join(_remote(unpack))
  install_words = _remote(install)
  assert "uv" in install_words and "requirements.lock" in install_words and ".[tpu]" in install_words
  # The same eva_jax.main on every worker; quoting survives both shells (local, then remote).
  assert _remote(run) == [
    "cd",
    "eva_jax",
    "&&",
    ".venv/bin/python",
    "-m",
    "eva_jax.main",
    "--distributed=on",
    "--config=configs/gemma2_9b.py",
    "--workdir=gs://bucket/run 1",
    *EXTRA,
  ]


def test_an_existing_tpu_is_reused(fake_gcloud):
  env, calls = fake_gcloud
  result = _tpu(env={**env, "FAKE_TPU_EXISTS": "1", "STEPS": "create run"})
  assert result.returncode == 0, result.stderr
  describe, run = calls()
  assert describe == [*GCLOUD_TPU, "describe", "eva-pod", *WHERE]
  assert _remote(run)[5:7] == ["eva_jax.main", "--distributed=on"]
  assert "reusing TPU eva-pod" in result.stderr


def test_a_missing_tpu_is_created_and_local_code_is_copied(fake_gcloud, tmp_path):
  env, calls = fake_gcloud
  repo = tmp_path / "repo"
  (repo / ".venv").mkdir(parents=True)
  (repo / "setup.py").write_text("# code\n")
  (repo / ".venv" / "big").write_text("not copied\n")
  result = _tpu(env={**env, "REPO": str(repo), "STEPS": "create copy"})
  assert result.returncode == 0, result.stderr
  describe, create, scp, unpack = calls()
  assert create[len(GCLOUD_TPU)] == "create"
  archive = scp[len(GCLOUD_TPU) + 1]
  assert archive.startswith(str(tmp_path)) and not os.path.exists(archive)  # removed on exit
  with tarfile.open(tmp_path / "gcloud.jsonl.sent") as sent:
    assert sorted(sent.getnames()) == [".", "./setup.py"]  # the code, not the venv
  assert "tar -xzf" in " ".join(_remote(unpack))


def test_a_git_url_is_cloned_on_every_worker(fake_gcloud):
  env, calls = fake_gcloud
  url = "https://github.com/example/eva_jax.git"
  result = _tpu("--dry-run", env={**env, "REPO": url, "REF": "v1.0", "STEPS": "copy"})
  assert result.returncode == 0, result.stderr
  (clone,) = [shlex.split(line) for line in result.stdout.splitlines()]
  words = _remote(clone)
  assert words[words.index("git") :] == ["git", "clone", "--depth=1", "--branch", "v1.0", url, "eva_jax"]


@pytest.mark.parametrize("missing", ["PROJECT", "ZONE", "TPU_NAME", "WORKDIR"])
def test_a_missing_variable_is_named(missing):
  env = {k: v for k, v in {**os.environ, **TPU_ENV}.items() if k != missing}
  result = subprocess.run(
    ["bash", TPU_SH, "--dry-run"], env=env, capture_output=True, text=True, timeout=HANG_GUARD_S
  )
  assert result.returncode != 0 and f"{missing}: set {missing}" in result.stderr


def test_gpu_sh_installs_the_cuda_build_only_when_missing(tmp_path):
  def dry_run(venv):
    env = {**os.environ, "DRY_RUN": "1", "VENV": str(venv), "UV": "uv"}
    result = subprocess.run(
      ["bash", GPU_SH, "--config=configs/quickstart.py", "--workdir=/tmp/x y"],
      env=env,
      capture_output=True,
      text=True,
      timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()

  # A venv whose python cannot import the CUDA plugin (it fails every -c): install, then run.
  without = tmp_path / "without"
  (without / "bin").mkdir(parents=True)
  (without / "bin" / "python").write_text("#!/bin/sh\nexit 1\n")
  (without / "bin" / "python").chmod(0o755)
  install, run = dry_run(without)
  assert install == f"uv pip install --python {without}/bin/python -e .[cuda]"
  assert (
    run
    == f"env JAX_PLATFORMS=cuda {without}/bin/python -m eva_jax.main --config=configs/quickstart.py --workdir=/tmp/x y"
  )
  # One that can: run only.
  with_plugin = tmp_path / "with"
  (with_plugin / "bin").mkdir(parents=True)
  (with_plugin / "bin" / "python").write_text("#!/bin/sh\nexit 0\n")
  (with_plugin / "bin" / "python").chmod(0o755)
  (run,) = dry_run(with_plugin)
  assert run.startswith("env JAX_PLATFORMS=cuda ")


@pytest.mark.skipif(
  shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt-get install shellcheck)"
)
def test_shell_scripts_pass_shellcheck():
  scripts = [os.path.join(ROOT, "launch", name) for name in sorted(os.listdir(os.path.join(ROOT, "launch")))]
  scripts = [s for s in scripts if s.endswith(".sh")]
  assert len(scripts) >= 2
  result = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, timeout=HANG_GUARD_S)
  assert result.returncode == 0, result.stdout
