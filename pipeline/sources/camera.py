"""CameraSource: one reader thread per camera, reconnects, stall watchdog, buffering.

Streams and webcams ("live" sources) run a reconnect loop: open (bounded by
``open_timeout_s``), pump frames until the stream breaks or stalls (no frame for
``stall_timeout_s``; FFmpeg's read timeout is set to the same value so a blocked read
returns), then wait an exponential backoff with jitter and reopen. A watchdog thread
backs this up for backends that ignore timeouts: a reader blocked in one open/read for
longer than its limit (+ ``WATCHDOG_GRACE_S``) is abandoned (it exits as soon as the
call returns) and a fresh reader thread reconnects. Recordings (files, image folders)
are read once from start to end. A failing camera only ever affects its own threads:
the consumer polls ``read(timeout)`` and gets None when nothing came.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pipeline.core.errors import SourceError
from pipeline.health import CameraHealth, HealthStats
from pipeline.sources.backoff import Backoff
from pipeline.sources.buffers import FrameBuffer, LatestFrameBuffer, LosslessBuffer
from pipeline.sources.options import SourceKind, SourceOptions
from pipeline.sources.readers import FrameReader
from pipeline.sources.redact import redact_text, redact_uri
from pipeline.core.types import Frame

log = logging.getLogger("pipeline.sources")
LIVE_KINDS: tuple[SourceKind, ...] = ("stream", "webcam")
WATCHDOG_GRACE_S = 1.0


class _Superseded(Exception):
    """Raised in a reader thread the watchdog has replaced: it must exit quietly."""


class CameraSource:
    """Frames of one camera, read by a background thread.

    make_reader: builds a fresh (unopened) reader for every (re)connection.
    reader: an already opened reader to use first (open_source probes files so a bad
    file fails synchronously with a SourceError). Use ``start()``, then ``read()``
    until ``finished``; ``stop()`` (or the context manager) ends the thread.
    """

    def __init__(
        self,
        opts: SourceOptions,
        kind: SourceKind,
        make_reader: Callable[[], FrameReader],
        reader: FrameReader | None = None,
        seed: int | None = None,
    ) -> None:
        self.opts = opts
        self.kind = kind
        self.cam_id = opts.cam_id
        self.label = redact_uri(opts.uri)
        self.is_live = kind in LIVE_KINDS
        mode = opts.mode if opts.mode != "auto" else ("live" if self.is_live else "lossless")
        self.mode = mode
        ts = opts.timestamps if opts.timestamps != "auto" else ("wall" if self.is_live else "media")
        self.timestamp_mode = ts
        self._make_reader = make_reader
        self._first_reader = reader
        self._stats = HealthStats(opts.cam_id, self.label)
        self._buffer: FrameBuffer = (
            LatestFrameBuffer(on_drop=self._stats.on_drop) if mode == "live" else LosslessBuffer(opts.queue_size)
        )
        self._backoff = Backoff(opts.reconnect_initial_s, opts.reconnect_max_s, opts.reconnect_jitter, seed)
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._thread: threading.Thread | None = None
        self._index = 0  # 0-based index of the next source frame
        self._current: FrameReader | None = None  # the reader in use (for fps/frame_count)
        self._fps = 30.0
        # watchdog state, guarded by _gen_lock: the current reader thread's generation and
        # since when / for how long it may stay inside one blocking open() or read()
        self._gen_lock = threading.Lock()
        self._gen = 0
        self._busy_since: float | None = None
        self._busy_limit = 0.0
        self._watchdog: threading.Thread | None = None

    # ----------------------------------------------------------------- consumer API
    def start(self) -> None:
        if self._thread is not None:
            return
        self._spawn_reader(0)
        if self.is_live:
            self._watchdog = threading.Thread(target=self._watch, name=f"watchdog-{self.cam_id}", daemon=True)
            self._watchdog.start()

    def _spawn_reader(self, gen: int) -> None:
        self._thread = threading.Thread(target=self._run, args=(gen,), name=f"source-{self.cam_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the reader thread to end and wait for it (at most ``timeout`` s)."""
        self._stop.set()
        self._buffer.close()
        if self._watchdog is not None:
            self._watchdog.join(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def read(self, timeout: float | None = None) -> Frame | None:
        """The next frame (live mode: the newest one), or None when none came within
        ``timeout`` seconds or the source has finished."""
        frame = self._buffer.get(timeout)
        if frame is not None:
            self._stats.on_delivered()
        return frame

    @property
    def finished(self) -> bool:
        """No frame will ever come again and none is waiting: a file or folder reached its
        end, the source was stopped, or a live source gave up after ``max_reconnects``."""
        return self._ended.is_set() and self._buffer.empty()

    def health(self) -> CameraHealth:
        return self._stats.snapshot()

    @property
    def fps(self) -> float | None:
        """Frame rate: ``opts.fps``, else what the file/folder/stream reported (None while unknown)."""
        if self.opts.fps:
            return float(self.opts.fps)
        reader = self._first_reader if self._first_reader is not None else self._current
        return None if reader is None else reader.fps

    @property
    def frame_count(self) -> int | None:
        """The file's or folder's own frame count (before stride/max_frames); None for live sources."""
        if self.is_live:
            return None
        reader = self._first_reader if self._first_reader is not None else self._current
        return None if reader is None else reader.frame_count

    def __enter__(self) -> CameraSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- reader thread
    def _run(self, gen: int) -> None:
        superseded = False
        try:
            if self.is_live:
                self._run_live(gen)
            else:
                self._run_recorded(gen)
        except _Superseded:
            superseded = True
            log.info("%s: abandoned reader returned and exits", self._who())
        except Exception as exc:  # never let a camera thread die silently
            self._stats.set_state("down")
            log.error("%s: reader thread failed: %s", self._who(), redact_text(repr(exc)))
        finally:
            if not superseded:
                self._ended.set()
                self._buffer.close()

    def _blocking(self, gen: int, limit_s: float, call: Callable):
        """Run one blocking reader call under the watchdog; raise _Superseded if this
        thread was replaced before or while it was blocked."""
        with self._gen_lock:
            if gen != self._gen:
                raise _Superseded
            self._busy_since, self._busy_limit = time.monotonic(), limit_s + WATCHDOG_GRACE_S
        try:
            return call()
        finally:
            with self._gen_lock:
                if gen != self._gen:
                    raise _Superseded
                self._busy_since = None

    def _watch(self) -> None:
        """Replace a reader thread stuck in one call for longer than its limit."""
        period = min(0.5, self.opts.stall_timeout_s / 4)
        while not self._stop.wait(period):
            with self._gen_lock:
                since, limit = self._busy_since, self._busy_limit
                if since is None or time.monotonic() - since <= limit:
                    continue
                self._gen += 1
                gen, self._busy_since = self._gen, None
            log.warning("%s: reader blocked for %.1f s; abandoning it and reconnecting",
                        self._who(), time.monotonic() - since)
            self._stats.set_state("reconnecting")
            self._stats.on_reconnect()
            self._spawn_reader(gen)

    def _who(self) -> str:
        return f"camera {self.cam_id} ({self.label})"

    def _open(self, gen: int) -> FrameReader | None:
        """A fresh opened reader, or None (logged) when the camera cannot be opened."""
        if self._first_reader is not None:
            reader = self._current = self._first_reader  # set before clearing: fps/frame_count read both
            self._first_reader = None
            return reader
        reader = self._make_reader()
        try:
            self._blocking(gen, self.opts.open_timeout_s, reader.open)
        except _Superseded:
            reader.close()
            raise
        except SourceError as exc:
            log.warning("camera %s: %s", self.cam_id, redact_text(str(exc)))
            return None
        self._current = reader
        return reader

    def _run_recorded(self, gen: int) -> None:
        reader = self._open(gen)
        if reader is None:
            self._stats.set_state("down")
            return
        self._fps = self.opts.fps or reader.fps or 30.0
        self._stats.set_state("streaming")
        try:
            self._pump(reader, gen)
        finally:
            reader.close()
        if not self._stop.is_set():
            self._stats.set_state("finished")
            log.info("%s: finished after %d frames", self._who(), self._index)

    def _run_live(self, gen: int) -> None:
        while not self._stop.is_set():
            reader = self._open(gen)
            if reader is not None:
                self._fps = self.opts.fps or reader.fps or 30.0
                log.info("%s: connected", self._who())
                try:
                    got = self._pump(reader, gen)
                finally:
                    reader.close()
                if got:
                    self._backoff.reset()
            if self._stop.is_set():
                break
            if self.opts.max_frames is not None and self._index >= self.opts.max_frames:
                self._stats.set_state("finished")
                return
            limit = self.opts.max_reconnects
            if limit is not None and self._stats.reconnects >= limit:
                self._stats.set_state("down")
                log.error("%s: down after %d reconnect attempts, giving up", self._who(), limit)
                return
            delay = self._backoff.next()
            self._stats.set_state("reconnecting")
            self._stats.on_reconnect()
            log.warning("%s: reconnecting in %.1f s (attempt %d)", self._who(), delay, self._backoff.attempt)
            self._stop.wait(delay)

    def _pump(self, reader: FrameReader, gen: int) -> bool:
        """Read frames into the buffer until end, stall, stop or max_frames.
        Returns True when at least one frame was captured."""
        opts, got = self.opts, False
        last_frame = time.monotonic()
        t0 = time.monotonic()
        first_index = self._index
        while not self._stop.is_set():
            if opts.max_frames is not None and self._index >= opts.max_frames:
                return got
            if self._index % opts.stride:
                status, image = self._blocking(gen, opts.stall_timeout_s, reader.skip), None
            else:
                status, image = self._blocking(gen, opts.stall_timeout_s, reader.read)
            now = time.monotonic()
            if status == "end":
                if self.is_live:
                    log.warning("%s: stream ended or timed out", self._who())
                return got
            if status == "error":
                self._stats.on_error()
                log.warning("%s: corrupt frame %d skipped", self._who(), self._index)
                self._index += 1
                if self.is_live and now - last_frame > opts.stall_timeout_s:
                    log.warning("%s: stalled for %.1f s", self._who(), now - last_frame)
                    return got
                continue
            last_frame = now
            index, self._index = self._index, self._index + 1
            if image is None:  # skipped by stride
                continue
            got = True
            self._emit(index, image, now)
            if opts.realtime and not self.is_live:
                self._stop.wait(max(0.0, t0 + (index - first_index + 1) / self._fps - time.monotonic()))
        return got

    def _emit(self, index: int, image, now: float) -> None:
        if self.timestamp_mode == "wall":
            ts = time.time()
        else:
            ts = self.opts.start_time + index / self._fps
        self._stats.on_frame(now)
        self._stats.set_state("streaming")
        self._buffer.put(Frame(cam_id=self.cam_id, index=index, timestamp=ts, image=image), self._stop)
