#!/usr/bin/env bash
# Set up (with test tools and the optional runtimes the tests cover: ONNX Runtime,
# torchao) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev onnx torchao
# pytest exits 5 when it collected no tests: that is a failure here too.
exec .venv/bin/python -m pytest -q "$@"
