#!/usr/bin/env bash
# Install the Debian packages it uses (tools/setup_system.sh: ffmpeg, GStreamer RTSP server), then create
# ./.venv and install reid-pipeline (editable) with its test extras.
# Idempotent: re-running only installs what is missing.
#   TORCH_SPEC  torch/torchvision requirement (default: the versions CI pins)
#   PYTHON      interpreter to build the venv from (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
# requires-python in pyproject.toml: say so at once (an older Python installs torch, then pip backtracks through
# every ultralytics release instead of failing); an existing .venv is checked the same way
for py in "$PYTHON" .venv/bin/python; do
  [ "$py" = .venv/bin/python ] && [ ! -x .venv/bin/python ] && continue
  if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "[setup] error: $py is Python $("$py" -c 'import platform; print(platform.python_version())' 2>/dev/null || echo '?'); reid-pipeline needs Python >= 3.11 (set PYTHON=python3.11 or newer; remove .venv if it was made with the old one)" >&2
    exit 2
  fi
done
bash tools/setup_system.sh
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
  echo "[setup] installing $TORCH_SPEC (large; a few minutes)"
  $PIP install -q $TORCH_SPEC
fi
echo "[setup] installing reid-pipeline and its dependencies"
$PIP install -q -e ".[dev]"
.venv/bin/reid-pipeline --help >/dev/null
echo "[setup] done: .venv/bin/reid-pipeline is ready"
