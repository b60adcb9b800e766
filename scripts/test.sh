#!/usr/bin/env bash
# All tests on a fresh machine: set up, then run the unit tests and the parity suite.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
