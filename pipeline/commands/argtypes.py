"""argparse value types shared by the subcommands (a bad value is argparse's one-line usage error, exit 2)."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value}")
    return value


def store_id(text: str) -> int:
    """argparse type: an id as the identity store keeps it (SQLite INTEGER: a signed 64-bit whole number)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not -(2**63) <= value < 2**63:
        raise argparse.ArgumentTypeError(f"{value} is out of range for a stored id (a signed 64-bit number)")
    return value


def unit_fraction(text: str) -> float:
    """argparse type: a fraction in (0, 1] (a share, not a percentage)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1], got {text!r}") from None
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 1] (0.5 = half), got {text}")
    return value
