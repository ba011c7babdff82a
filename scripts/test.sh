#!/usr/bin/env bash
# Set up (with test tools) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
# pytest exits 5 when it collected no tests: that is a failure here too.
exec .venv/bin/python -m pytest -q "$@"
