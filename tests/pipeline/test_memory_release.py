"""glibc's free heap goes back to the system when the live loop asks (pipeline/core/memory.py)."""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

from pipeline.core.memory import release_free_heap

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_freed_heap_blocks_are_handed_back() -> None:
    """3,200 blocks of 64 KiB (below glibc's mmap threshold: heap, not mappings) are written, then every other
    one is freed: the freed ~100 MiB are holes between blocks still in use, which glibc keeps resident (it can
    only shrink a heap from its top on free) until release_free_heap hands their pages back."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(64 * 1024) for _ in range(3200)]
    assert all(blocks)
    for b in blocks:
        ctypes.memset(b, 1, 64 * 1024)
    for b in blocks[::2]:
        libc.free(b)
    kept = _rss_mib()
    try:
        assert release_free_heap() is True
        after = _rss_mib()
    finally:
        for b in blocks[1::2]:
            libc.free(b)
    assert after < kept - 60, (kept, after)
