"""Hand-over buffers between a camera's reader thread and its consumer.

* :class:`LatestFrameBuffer` (live mode): holds one frame; a new frame replaces an
  unread one, which counts as a drop. The consumer always gets the newest image.
* :class:`LosslessBuffer` (lossless mode): a bounded FIFO; ``put`` waits while it is
  full (back-pressure on the reader), nothing is ever dropped.

Both are closed by the producer when it ends (``close``): ``get`` then drains what is
left and returns None immediately afterwards.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Protocol

from pipeline.core.types import Frame


class FrameBuffer(Protocol):
    def put(self, frame: Frame, stop: threading.Event | None = None) -> bool: ...
    def get(self, timeout: float | None = None) -> Frame | None: ...
    def close(self) -> None: ...
    def empty(self) -> bool: ...


class _Closable:
    """Shared by both buffers: a condition guards the state, ``close()`` wakes every waiter for good."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._closed = False

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class LatestFrameBuffer(_Closable):
    """One-slot buffer; a ``put`` that replaces an unread frame calls ``on_drop()``."""

    def __init__(self, on_drop: Callable[[], None] | None = None) -> None:
        super().__init__()
        self._on_drop = on_drop
        self._frame: Frame | None = None

    def put(self, frame: Frame, stop: threading.Event | None = None) -> bool:
        """Store ``frame`` as the newest; always accepted (returns True)."""
        with self._cond:
            dropped = self._frame is not None
            self._frame = frame
            self._cond.notify_all()
        if dropped and self._on_drop is not None:
            self._on_drop()
        return True

    def get(self, timeout: float | None = None) -> Frame | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout):
                return None
            frame, self._frame = self._frame, None
            return frame

    def empty(self) -> bool:
        with self._cond:
            return self._frame is None


class LosslessBuffer(_Closable):
    """Bounded FIFO of ``capacity`` frames; ``put`` blocks while full (until ``stop`` is set)."""

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self._items: deque[Frame] = deque()
        self._capacity = int(capacity)

    def put(self, frame: Frame, stop: threading.Event | None = None) -> bool:
        """Append ``frame``; waits for room. Returns False (frame not queued) only when
        ``stop`` was set or the buffer was closed while waiting. Never drops otherwise."""
        with self._cond:
            while len(self._items) >= self._capacity:
                if self._closed or (stop is not None and stop.is_set()):
                    return False
                self._cond.wait(0.1)
            self._items.append(frame)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame = self._items.popleft()
            self._cond.notify_all()
            return frame

    def empty(self) -> bool:
        with self._cond:
            return not self._items
