#!/usr/bin/env bash
# Install the Debian packages it uses (tools/setup_system.sh: ffmpeg, GStreamer RTSP server), then create
# ./.venv and install reid-pipeline (editable) with its test extras.
# Idempotent: re-running only installs what is missing.
#   TORCH_SPEC  torch/torchvision requirement (default: the versions CI pins)
#   PYTHON      interpreter to build the venv from (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_system.sh
PYTHON=${PYTHON:-python3}
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
