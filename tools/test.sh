#!/usr/bin/env bash
# Set up (tools/setup.sh: Debian packages and ./.venv) and run the whole test suite.
# Extra arguments go to pytest, e.g.  bash tools/test.sh -k tracker -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec .venv/bin/python -m pytest -q "$@"
