"""Which torch device to use: the one rule for every part of the project."""

from __future__ import annotations


def resolve_device(requested: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is usable, else 'cpu'; any other value is returned as given."""
    if requested != "auto":
        return requested
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
