#!/usr/bin/env bash
# The GPU checks in one call, for a lent GPU machine (or any CUDA box with torch, jax and
# the CUDA plugin installed). Installs nothing from the network. Writes everything under
# $OUT (default: results/gpu_check): the GPU tests' log, the probe's ceilings, and the
# results files of the suites on torch:cuda:* and jax:gpu:* at default and large sizes.
#   OUT=/some/dir bash scripts/gpu_check.sh [MACHINE_ID]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-results/gpu_check}
MID=${1:-gpu-check}
PY=${PYTHON:-python3}
BUDGET=${XPUBENCH_GPU_BUDGET:-0.3}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
status=0
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv | tee "$OUT/nvidia-smi.csv"

echo "== GPU unit tests"
$PY -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu_real.py tests/test_telemetry_nvml.py \
  2>&1 | tee "$OUT/gpu_tests.log" || status=1

echo "== probe (ceilings)"
$PY -m xpubench probe -b torch:cuda -b jax:gpu --size large --refresh --out "$OUT/results" --machine-id "$MID" \
  2>&1 | tee "$OUT/probe.log" || status=1

TORCH="-b torch:cuda:fp32 -b torch:cuda:tf32 -b torch:cuda:bf16 -b torch:cuda:fp16 -b torch:cuda:fp8"
JAX="-b jax:gpu:fp32 -b jax:gpu:bf16"
for size in default large; do
  echo "== suites at $size size"
  # shellcheck disable=SC2086
  $PY -m xpubench run $TORCH $JAX --size "$size" --time-budget "$BUDGET" --case-timeout 300 \
    --out "$OUT/results" --machine-id "$MID" 2>&1 | tee "$OUT/run-$size.log" || status=1
done
find "$OUT" -name '*.json' -print
exit $status
