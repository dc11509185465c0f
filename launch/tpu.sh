#!/usr/bin/env bash
# Runs eva_jax on a Cloud TPU VM slice (one host or a pod): create or reuse the TPU, put the code on
# every worker, install, and start the same `python -m eva_jax.main` on all workers at once.
#
#   PROJECT=my-proj ZONE=us-west4-a TPU_NAME=eva ACCELERATOR_TYPE=v5litepod-64 \
#   CONFIG=configs/gemma2_9b.py WORKDIR=gs://my-bucket/eva-run \
#   launch/tpu.sh [--dry-run] [extra eva_jax.main flags, e.g. --config.model.checkpoint=gs://...]
#
# Variables (required unless a default is given):
#   PROJECT           Google Cloud project
#   ZONE              zone of the TPU, e.g. us-west4-a
#   TPU_NAME          TPU VM name; reused when it already exists
#   ACCELERATOR_TYPE  e.g. v5litepod-64, v5p-128, v4-32 (default v5litepod-8)
#   RUNTIME_VERSION   TPU VM software version (default v2-alpha-tpuv5-lite, the v5e image)
#   REPO              git URL to clone on the workers, or a local directory to copy (default: this checkout)
#   REF               branch or tag to clone when REPO is a URL (default: the remote's default branch)
#   CONFIG            config file, relative to the repo (default configs/gemma2_9b.py)
#   WORKDIR           run directory; use gs:// on a pod: the workers share no disk, and the prompt
#                     pool written by process 0 must be readable by all (required)
#   REMOTE_DIR        code directory on each worker (default eva_jax, in the login user's home)
#   STEPS             which steps to run, in order (default "create copy install run")
# --dry-run prints each gcloud command instead of running it (a dry run assumes the TPU is absent).
# Every worker runs with --distributed=on: JAX finds the coordinator and its rank on the TPU VM.
set -euo pipefail

DRY_RUN=0
if [[ "${1:-}" == "--dry-run" ]]; then
  DRY_RUN=1
  shift
fi
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit 0
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${PROJECT:?set PROJECT (Google Cloud project)}"
: "${ZONE:?set ZONE (e.g. us-west4-a)}"
: "${TPU_NAME:?set TPU_NAME}"
: "${WORKDIR:?set WORKDIR (gs://bucket/run on a pod)}"
ACCELERATOR_TYPE="${ACCELERATOR_TYPE:-v5litepod-8}"
RUNTIME_VERSION="${RUNTIME_VERSION:-v2-alpha-tpuv5-lite}"
REPO="${REPO:-$HERE}"
REF="${REF:-}"
CONFIG="${CONFIG:-configs/gemma2_9b.py}"
REMOTE_DIR="${REMOTE_DIR:-eva_jax}"
STEPS="${STEPS:-create copy install run}"

GCLOUD_TPU=(gcloud compute tpus tpu-vm)
WHERE=("--project=$PROJECT" "--zone=$ZONE")

log() { echo "tpu.sh: $*" >&2; }

# One word for a shell: as is when plain, else in single quotes.
quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

# Runs one command, or with --dry-run prints it, quoted so that it can be pasted into a shell.
run() {
  if ((DRY_RUN)); then
    local word line=""
    for word in "$@"; do
      line+="$(quote "$word") "
    done
    echo "${line% }"
  else
    "$@"
  fi
}

# The same command on every worker of the slice.
on_all_workers() {
  run "${GCLOUD_TPU[@]}" ssh "$TPU_NAME" "${WHERE[@]}" --worker=all --command="$1"
}

step_create() {
  if ((!DRY_RUN)) && "${GCLOUD_TPU[@]}" describe "$TPU_NAME" "${WHERE[@]}" >/dev/null 2>&1; then
    log "reusing TPU $TPU_NAME"
    return
  fi
  log "creating TPU $TPU_NAME ($ACCELERATOR_TYPE, $RUNTIME_VERSION)"
  run "${GCLOUD_TPU[@]}" create "$TPU_NAME" "${WHERE[@]}" \
    "--accelerator-type=$ACCELERATOR_TYPE" "--version=$RUNTIME_VERSION"
}

step_copy() {
  if [[ -d "$REPO" ]]; then
    # A local checkout, as it is now (uncommitted edits included); no venv, git or caches.
    ARCHIVE="${TMPDIR:-/tmp}/eva_jax_code.$$.tar.gz"  # global: the EXIT trap still sees it
    ((DRY_RUN)) || trap 'rm -f "$ARCHIVE"' EXIT
    log "packing $REPO into $ARCHIVE"
    run tar -czf "$ARCHIVE" -C "$REPO" --exclude=.venv --exclude=.git --exclude=__pycache__ --exclude='*.egg-info' .
    run "${GCLOUD_TPU[@]}" scp "$ARCHIVE" "$TPU_NAME:eva_jax_code.tar.gz" "${WHERE[@]}" --worker=all
    on_all_workers "rm -rf $(quote "$REMOTE_DIR") && mkdir -p $(quote "$REMOTE_DIR") \
&& tar -xzf eva_jax_code.tar.gz -C $(quote "$REMOTE_DIR")"
  else
    local branch=""
    [[ -n "$REF" ]] && branch="--branch $(quote "$REF") "
    on_all_workers "rm -rf $(quote "$REMOTE_DIR") && git clone --depth=1 ${branch}$(quote "$REPO") $(quote "$REMOTE_DIR")"
  fi
}

step_install() {
  # uv brings its own Python 3.12 (gemma 4 needs it; TPU VM images ship an older one), then the
  # locked versions and the TPU build of jax on top.
  on_all_workers "cd $(quote "$REMOTE_DIR") && python3 -m pip install --user --quiet uv \
&& python3 -m uv venv --python 3.12 .venv \
&& python3 -m uv pip sync --python .venv/bin/python requirements.lock \
&& python3 -m uv pip install --python .venv/bin/python -e '.[tpu]'"
}

step_run() {
  local arg extra=""
  for arg in "$@"; do
    extra+=" $(quote "$arg")"
  done
  on_all_workers "cd $(quote "$REMOTE_DIR") && .venv/bin/python -m eva_jax.main --distributed=on \
$(quote "--config=$CONFIG") $(quote "--workdir=$WORKDIR")${extra}"
}

if [[ "$WORKDIR" != gs://* ]]; then
  log "warning: WORKDIR=$WORKDIR is not on gs://; on a multi-host slice every worker needs the same files"
fi
for step in $STEPS; do
  case "$step" in
    create) step_create ;;
    copy) step_copy ;;
    install) step_install ;;
    run) step_run "$@" ;;
    *)
      log "unknown step '$step' in STEPS (create, copy, install, run)"
      exit 2
      ;;
  esac
done
