"""``torch.load`` of weights files without unpickling code, failing with one line of our own.

Every weights file the project reads (embedding checkpoints, LSTM aggregators, the ImageNet
MobileNetV2 weights, weights stored in the identity store) goes through :func:`load_weights`:
``torch.load(weights_only=True)`` only reconstructs tensors and plain data, so a crafted file
cannot run code. torch's own error message for a refused file advises re-running with
``weights_only=False``, i.e. executing whatever the file holds; that advice is never passed on.
The message names the file, says what it is not, and why (damaged / not a torch file, or the
Python global it would have needed).
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import torch

from pipeline.core.errors import ModelError

# torch words it "Unsupported global: GLOBAL mod.name" or "unsupported GLOBAL mod.name whose module ..."
_GLOBAL_RE = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)")


def refusal_reason(exc: BaseException) -> str:
    """Why torch refused a file, in a few words of our own (never torch's ``weights_only=False`` advice)."""
    found = _GLOBAL_RE.search(str(exc))
    if found:
        return f"it holds Python objects ({found.group(1)}), which are never unpickled"
    return "not a torch file, or damaged or truncated"


def load_weights(source: str | Path | bytes, label: str, what: str) -> Any:
    """``torch.load(source, map_location="cpu", weights_only=True)``.

    source: a path or the file's bytes; label: how the message names it (the path, or
    ``store:version``); what: e.g. ``"a valid reid-pipeline checkpoint"``. Any failure -> one-line
    ModelError ``"<label>: not <what> (<reason>)"``.
    """
    try:
        stream = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        return torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling problem is the file's
        raise ModelError(f"{label}: not {what} ({refusal_reason(exc)})") from None
