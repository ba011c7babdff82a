#!/usr/bin/env bash
# The GPU readiness check (docs/gpu.md): install offline, the gpu-marked tests, the probe, the
# suites on torch:cuda:* and jax:gpu:*, the report where plotly is importable; each stage under
# its own time limit, at most 8 minutes in all. Summary, log and archives land in $OUT.
#   bash scripts/gpu_check.sh                 # on the lent GPU machine (python3 has torch and jax)
#   bash scripts/gpu_check.sh --dry-run       # the same stages on the CPU backends, smoke size (CI)
#   bash scripts/gpu_check.sh --estimate      # the plan's cost on one H200; runs nothing
# PYTHON picks the interpreter (default python3; here .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" scripts/gpu_check.py "$@"
