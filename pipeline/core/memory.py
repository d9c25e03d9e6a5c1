"""glibc malloc settings of a long-running pipeline process (Linux / glibc only; no-ops elsewhere).

A live run allocates and frees large transient buffers every iteration (decoded frames, detector
blobs, crop batches, the matcher's per-call arrays). glibc keeps freed heap memory for reuse and
raises its mmap threshold after freeing a large mapped block, so a buffer that was mapped and handed
back to the system on free can later come from the heap and stay resident: RSS then steps up once
and stays there although nothing is in use (seen in the 8-camera hour at minute ~55, docs/speed.md).
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["limit_malloc_arenas", "release_free_heap"]


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (``mallopt(M_ARENA_MAX)``) before the run starts its threads; True when set.

    glibc gives new threads their own arenas (up to 8 x cores) and keeps each arena's high-water memory. A
    camera's reader thread is re-created on every reconnect, so without a cap a long live run's RSS steps up
    at its first reconnects (measured: +6 % in the first 6 minutes of the 30-minute soak, flat afterwards).
    ``MALLOC_ARENA_MAX`` in the environment, when set, wins; other C libraries are left alone.
    """
    libc = _libc()
    if os.environ.get("MALLOC_ARENA_MAX") or libc is None:
        return False
    try:
        return bool(libc.mallopt(-8, int(arenas)))  # -8 = M_ARENA_MAX
    except AttributeError:
        return False


def release_free_heap() -> bool:
    """glibc's ``malloc_trim(0)``: hand the free pages of every arena back to the system (what is in use
    stays); True when glibc released memory. A few milliseconds; the live loop calls it once a minute."""
    libc = _libc()
    if libc is None:
        return False
    try:
        return bool(libc.malloc_trim(0))
    except AttributeError:
        return False
