"""Which torch device to use: the one rule for every part of the project."""

from __future__ import annotations

from pipeline.core.errors import ConfigError


def resolve_device(requested: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is usable, else 'cpu'; any other value is checked and returned as given.

    A value torch does not know (``gpu``) or a device this machine does not have (``cuda`` without a usable GPU,
    ``cuda:3`` on a one-GPU machine, ``mps`` off Apple silicon) is a one-line :class:`ConfigError` naming it, not
    torch's traceback at the first tensor moved there."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    spec = requested.strip()
    try:
        dev = torch.device(f"cuda:{spec}" if spec.isdigit() else spec)  # Ultralytics' "0" = the first GPU
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(f"device {requested!r}: not a torch device (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {requested!r}: no usable CUDA GPU on this machine (use auto or cpu)")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device {requested!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {requested!r}: MPS is not available on this machine (use auto or cpu)")
    return requested
