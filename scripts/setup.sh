#!/usr/bin/env bash
# Set up .venv with xpubench. Usage: bash scripts/setup.sh [--dev] [EXTRA...]
#   EXTRA: a pyproject extra, e.g. `cuda` (jax with CUDA), `tpu` (jax[tpu]), `onnx` (the
#   onnxruntime backend) or `torchao` (torch int8 on its kept path).
#   --dev: also the test tools and Debian's chromium (the report's browser tests).
# torch: where no NVIDIA GPU is present the light CPU build is installed first
# (XPUBENCH_CPU_TORCH overrides which); with a GPU, pip's default CUDA build. A torch
# that is already installed in the venv is kept: the project asks only for a range.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
extras=()
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    *) extras+=("$arg") ;;
  esac
done
[ "$dev" = 1 ] && extras+=("dev")

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found: installing a CUDA build of torch"
    pip install -q "torch>=2.4"
  else
    echo "setup: no NVIDIA GPU: installing the CPU build of torch"
    pip install -q "${XPUBENCH_CPU_TORCH:-torch==2.13.0}"
  fi
fi

target="."
if [ ${#extras[@]} -gt 0 ]; then
  target=".[$(IFS=,; echo "${extras[*]}")]"
fi
pip install -q -e "$target" 2>&1 | grep -v "^WARNING: Location" || true
python -c "import xpubench, xpubench.backends, xpubench.suites" # fail here, not later, if the install broke

if [ "$dev" = 1 ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Debian's chromium for the report's browser tests"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: chromium not found; install it (e.g. sudo apt-get install chromium) for the browser tests" >&2
  fi
fi
echo "setup: done (.venv ready)"
