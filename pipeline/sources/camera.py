"""CameraSource: one reader thread per camera, reconnects, stall watchdog, buffering.

Streams and webcams ("live" sources) run a reconnect loop: open (bounded by
``open_timeout_s``), pump frames until the stream breaks or stalls, then wait an
exponential backoff with jitter and reopen.

A stall is "no new frame for ``stall_timeout_s``", whatever the reader does meanwhile.
FFmpeg's read timeout is set to ``stall_timeout_s``; when it fires on a frozen stream
(connection open, no data) an RTSP/H.264 decoder still hands out the frames it had
buffered, one per timeout, so a frame that arrives more than ``stall_timeout_s`` after the
previous one is a stall (state ``stalled``, counted, the stale frame is dropped, the stream
is reopened); an MJPEG reader's timed-out read just fails, and a failed read that comes
more than ``stall_timeout_s`` after the last frame is the same stall. A watchdog thread
backs this up: a reader pumping frames that produced none
for ``stall_timeout_s`` + ``WATCHDOG_GRACE_S``, or one blocked in one open/read for
longer than its limit + the grace, is abandoned (it exits as soon as its call returns)
and a fresh reader thread reconnects. Time the reader spends waiting for the consumer
(lossless back-pressure) never counts towards a stall.

Frame rate of a live source (:meth:`CameraSource.wait_fps`): FFmpeg reports a rate at
connect, but for MJPEG over HTTP that is its default guess (25), so the rate the frames
actually arrive at is measured over the first seconds of the first connection; the
announced rate is kept when the two agree within ``RATE_AGREE``.

A camera that cannot be opened is asked once per failure streak why (one bounded request,
:func:`pipeline.sources.readers.diagnose_open_failure`): the reason (``401 Unauthorized``, ``404 Not Found``,
``connection refused``, ...) is in every line of that streak; after an authentication
failure the camera retries at ``reconnect_max_s`` at once, so that an IP camera does not
lock the account. A reconnect that delivers another frame size logs a warning.

``give_up_after_s``: a live source with no frame for that long (since start, or since
its last frame) gives up: state ``down``, ``failure`` holds a one-line SourceError and
``finished`` becomes true. ``wait_until_reachable()`` raises that error when it happens
before the first frame. Recordings (files, image folders) are read once from start to
end; corrupt frames are logged a few at a time and summarised per camera at the end.
A failing camera only ever affects its own threads: the consumer polls
``read(timeout)`` and gets None when nothing came.
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
from pipeline.sources.readers import FrameReader, OpenFailure, diagnose_open_failure, webcam_missing
from pipeline.sources.redact import redact_text, redact_uri
from pipeline.core.types import Frame

log = logging.getLogger("pipeline.sources")
LIVE_KINDS: tuple[SourceKind, ...] = ("stream", "webcam")
WATCHDOG_GRACE_S = 1.0
CORRUPT_LOG_FIRST = 3  # corrupt frames logged one by one ...
CORRUPT_LOG_EVERY_S = 10.0  # ... then one line with a count at most this often
# frame rate of a live source: the frames of the first RATE_SETTLE_S after connecting may be FFmpeg's probe backlog
# (handed out at once); the rate is measured over the RATE_MEASURE_S after it
RATE_SETTLE_S = 1.0
RATE_MEASURE_S = 2.0
RATE_AGREE = 0.2  # the announced rate is kept when the measured one is within +-20 % of it
#: how long a caller should wait for :meth:`CameraSource.wait_fps` at start (open, settle, measure, margin)
RATE_WAIT_S = 6.0


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
        self._stop_deadline: float | None = None  # monotonic time until which stop() waits for the threads
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
        # monotonic time of the last frame (or of the pump's start, or of the end of a wait
        # for the consumer) while the reader pumps frames; None while it does not
        self._progress: float | None = None
        self._watchdog: threading.Thread | None = None
        self._last_good = time.monotonic()  # last captured frame, or start(): give_up_after_s
        self._last_error = ""  # why the last open failed (redacted), for the give-up message
        self._failure: SourceError | None = None
        self._first = threading.Event()  # first frame captured, or the reader thread ended
        self._corrupt_logged = 0  # corrupt frames counted when the last corrupt line was logged
        self._corrupt_logged_at = 0.0
        # the frame rate of a live source (wait_fps): announced by the connection, measured from arrival times
        self._rate_lock = threading.Lock()
        self._rate: float | None = None
        self._rate_known = threading.Event()  # set once decided, or when the reader thread ended
        self._rate_announced: float | None = None
        self._rate_times: list[float] = []  # arrival (monotonic) of the source frames of the current connection
        self._open_failure: OpenFailure | None = None  # why opens fail, found once per failure streak
        self._failing = False  # inside a streak of failed opens
        self._size: tuple[int, int] | None = None  # (width, height) of the last frame

    # ----------------------------------------------------------------- consumer API
    def start(self) -> None:
        if self._thread is not None:
            return
        self._last_good = time.monotonic()
        self._spawn_reader(0)
        if self.is_live:
            self._watchdog = threading.Thread(target=self._watch, name=f"watchdog-{self.cam_id}", daemon=True)
            self._watchdog.start()

    def _spawn_reader(self, gen: int) -> None:
        self._thread = threading.Thread(target=self._run, args=(gen,), name=f"source-{self.cam_id}", daemon=True)
        self._thread.start()

    def request_stop(self, join_within_s: float = 10.0) -> None:
        """Ask the reader thread to end without waiting for it: no new connection is opened after this, and a
        later :meth:`stop` waits for the threads until ``join_within_s`` after this call at most. Call it on
        every camera first, then :meth:`stop` on each: stopping then takes as long as the slowest camera (a
        reader blocked in a call FFmpeg does not time out is left behind, as a daemon thread), not the sum."""
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + join_within_s
        self._stop.set()
        self._buffer.close()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the reader thread to end and wait for it (at most ``timeout`` s, and not beyond the deadline of an
        earlier :meth:`request_stop`); state ``finished`` unless the source had given up (``down``)."""
        self.request_stop(timeout)
        deadline = min(time.monotonic() + timeout, self._stop_deadline)
        for thread in (self._watchdog, self._thread):
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
        self._mark_stopped()

    def _mark_stopped(self) -> None:
        if self._stats.state != "down":
            self._stats.set_state("finished")

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
        end, the source was stopped, or a live source gave up (``max_reconnects``,
        ``give_up_after_s``)."""
        return self._ended.is_set() and self._buffer.empty()

    @property
    def failure(self) -> SourceError | None:
        """Why a live source gave up (one line naming the camera and its redacted URI), else None."""
        return self._failure

    def wait_until_reachable(self, timeout: float | None = None) -> None:
        """Block until the first frame was captured; raise :attr:`failure` (a SourceError)
        when the source gave up before that.

        Returns at once for recordings (opened by ``open_source``) and for live sources
        without ``give_up_after_s`` (nothing would bound the wait); ``timeout`` bounds it
        further. Call after ``start()``.
        """
        if not self.is_live or self.opts.give_up_after_s is None:
            return
        self._first.wait(timeout)
        if self._failure is not None and self._stats.frames == 0:
            raise self._failure

    def health(self) -> CameraHealth:
        return self._stats.snapshot()

    @property
    def fps(self) -> float | None:
        """Frame rate: ``opts.fps``, else what the file/folder reported, or for a live source the rate decided
        by :meth:`wait_fps`, else what the current connection announced (MJPEG: FFmpeg's guess, 25; use
        :meth:`wait_fps` for a rate to count in); None while unknown."""
        if self.opts.fps:
            return float(self.opts.fps)
        if self.is_live:
            with self._rate_lock:
                if self._rate is not None:
                    return self._rate
        reader = self._first_reader if self._first_reader is not None else self._current
        return None if reader is None else reader.fps

    def wait_fps(self, timeout_s: float) -> float | None:
        """The source's frames per second, waiting at most ``timeout_s`` for a live source to tell it.

        ``opts.fps`` when set; a recording's own rate (no wait). A live source (after ``start()``; this starts
        nothing) decides its rate once its first connection delivered frames for ``RATE_SETTLE_S`` +
        ``RATE_MEASURE_S`` s: the announced rate when the measured arrival rate agrees with it within
        ``RATE_AGREE``, else the measured one (MJPEG over HTTP announces FFmpeg's default 25 whatever the camera
        sends). None when it is still unknown after ``timeout_s`` (the camera is unreachable, or sends fewer
        than two frames in ``RATE_MEASURE_S``), or the source ended first."""
        if self.opts.fps:
            return float(self.opts.fps)
        if not self.is_live:
            return self.fps
        self._rate_known.wait(max(0.0, timeout_s))
        with self._rate_lock:
            return self._rate

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
                if self._stop.is_set():
                    self._mark_stopped()
                self._ended.set()
                self._first.set()
                self._rate_known.set()  # nothing more to wait for
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

    def _set_progress(self, gen: int, value: float | None) -> None:
        with self._gen_lock:
            if gen == self._gen:
                self._progress = value

    def _watch(self) -> None:
        """Replace a reader thread that produced no frame for ``stall_timeout_s`` + grace
        while pumping (a stall), or that is stuck in one open/read beyond its limit."""
        period = min(0.5, self.opts.stall_timeout_s / 4)
        stall_limit = self.opts.stall_timeout_s + WATCHDOG_GRACE_S
        while not self._stop.wait(period):
            with self._gen_lock:
                now = time.monotonic()
                since, limit, progress = self._busy_since, self._busy_limit, self._progress
                blocked = since is not None and now - since > limit
                silent = progress is not None and now - progress > stall_limit
                if not (blocked or silent):
                    continue
                self._gen += 1
                gen, self._busy_since, self._progress = self._gen, None, None
            if progress is not None:  # pumping: no new frame for too long
                how = "reader blocked in one call" if blocked else "reader returned no frame"
                self._stall(now - progress, f"{how}, abandoning it")
            else:
                log.warning("%s: reader blocked for %.1f s in open; abandoning it and reconnecting",
                            self._who(), now - since)
                self._set_reconnecting()
            if self._stop.is_set():  # no new connection once a stop was requested
                return
            self._stats.on_reconnect()
            self._spawn_reader(gen)

    def _stall(self, silent_s: float, how: str = "") -> None:
        """Count and log a stall (state ``stalled`` until frames flow again)."""
        self._stats.on_stall()
        log.warning("%s: stalled: no new frame for %.1f s (stall_timeout_s=%g)%s; reconnecting",
                    self._who(), silent_s, self.opts.stall_timeout_s, f"; {how}" if how else "")

    def _set_reconnecting(self) -> None:
        """State ``reconnecting``, except after a stall: that stays ``stalled`` until frames flow."""
        if self._stats.state != "stalled":
            self._stats.set_state("reconnecting")

    def _who(self) -> str:
        return f"camera {self.cam_id} ({self.label})"

    def _open(self, gen: int) -> FrameReader | None:
        """A fresh opened reader, or None (logged) when the camera cannot be opened."""
        if self._first_reader is not None:
            reader = self._current = self._first_reader  # set before clearing: fps/frame_count read both
            self._first_reader = None
            return reader
        if self._stop.is_set():  # no new connection once a stop was requested
            return None
        reader = self._make_reader()
        try:
            self._blocking(gen, self.opts.open_timeout_s, reader.open)
        except _Superseded:
            reader.close()
            raise
        except SourceError as exc:
            why = redact_text(str(exc))
            why = why[len(self.label) + 2:] if why.startswith(self.label + ": ") else why
            if self.is_live and not self._stop.is_set():
                if not self._failing:  # ask why once per streak of failed opens
                    self._failing = True
                    self._open_failure = self._diagnose()
                if self._open_failure is not None:
                    why = f"cannot open: {self._open_failure.reason}"
            log.warning("camera %s: %s: %s", self.cam_id, self.label, why)
            self._last_error = why
            return None
        self._failing, self._open_failure = False, None
        self._current = reader
        return reader

    def _diagnose(self) -> OpenFailure | None:
        """Why this live camera does not open (one bounded request to its server; a webcam's missing device)."""
        if self.kind == "webcam":
            from pipeline.sources.options import uri_kind

            missing = webcam_missing(uri_kind(self.opts.uri)[1])
            return None if missing is None else OpenFailure(missing)
        found = diagnose_open_failure(self.opts.uri, min(self.opts.open_timeout_s, 5.0))
        if found is None:
            return None
        return OpenFailure(redact_text(found.reason), found.auth)  # defence in depth: no URI in a reason

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
            self._summarise_recording(reader.frame_count)
            log.info("%s: finished after %d frames", self._who(), self._index)

    def _summarise_recording(self, announced: int | None) -> None:
        """One line per recording with corrupt frames, or that ended before its announced length."""
        errors, read = self._stats.errors, self._index
        capped = self.opts.max_frames is not None and read >= self.opts.max_frames
        short = announced is not None and read < announced and not capped
        tail = (f"; the file announces {announced} frames, only {read - errors} were intact (truncated or damaged?)"
                if short else "")
        if errors:
            log.warning("%s: %d corrupt frames skipped of %d read%s", self._who(), errors, read, tail)
        elif short:
            log.warning("%s: ended after %d frames%s", self._who(), read, tail)

    def _run_live(self, gen: int) -> None:
        while not self._stop.is_set():
            reader = self._open(gen)
            if reader is not None:
                self._fps = self.opts.fps or self.fps or reader.fps or 30.0
                with self._rate_lock:
                    self._rate_announced, self._rate_times = reader.fps, []
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
            if limit is not None and self._stats.reconnect_attempts >= limit:
                self._give_up(f"down after {limit} reconnect attempts, giving up")
                return
            silent = time.monotonic() - self._last_good
            give_up = self.opts.give_up_after_s
            if give_up is not None and silent >= give_up:
                never = "unreachable: " if self._stats.frames == 0 else ""
                last = f"; last error: {self._last_error}" if self._last_error else ""
                self._give_up(f"{never}no frame for {silent:.1f} s (give_up_after_s={give_up:g}){last}; giving up")
                return
            delay = self._backoff.next()
            auth = self._open_failure is not None and self._open_failure.auth
            if auth:  # wrong credentials: retry rarely, an IP camera may lock the account after a few failures
                delay = self.opts.reconnect_max_s
            if give_up is not None:  # one last attempt right at the deadline
                delay = min(delay, max(0.0, give_up - silent))
            self._set_reconnecting()
            self._stats.on_reconnect()
            log.warning("%s: reconnecting in %.1f s (attempt %d)%s", self._who(), delay, self._backoff.attempt,
                        "; authentication failed: retrying at reconnect_max_s" if auth else "")
            self._stop.wait(delay)

    def _give_up(self, why: str) -> None:
        """State ``down``; ``failure`` = one line naming the camera. Logged as ERROR, except
        before a first frame with ``give_up_after_s`` set: then ``wait_until_reachable``
        raises it and the log line is INFO (the user sees the message once)."""
        self._failure = SourceError(f"{self._who()}: {why}")
        self._stats.set_state("down")
        waited = self._stats.frames == 0 and self.opts.give_up_after_s is not None
        log.log(logging.INFO if waited else logging.ERROR, "%s", self._failure)

    def _pump(self, reader: FrameReader, gen: int) -> bool:
        """Read frames into the buffer until end, stall, stop or max_frames.
        Returns True when at least one frame was captured."""
        opts, got = self.opts, False
        last_frame = time.monotonic()  # of the last frame, or when the pump (or a wait for the consumer) ended
        t0 = time.monotonic()
        first_index = self._index
        self._set_progress(gen, last_frame)
        try:
            while not self._stop.is_set():
                if opts.max_frames is not None and self._index >= opts.max_frames:
                    return got
                if self._index % opts.stride or self._index < opts.start_index:
                    status, image = self._blocking(gen, opts.stall_timeout_s, reader.skip), None
                else:
                    status, image = self._blocking(gen, opts.stall_timeout_s, reader.read)
                now = time.monotonic()
                if status == "end":
                    if self.is_live and now - last_frame > opts.stall_timeout_s and not self._stop.is_set():
                        # a read that timed out on a frozen stream (MJPEG): no new frame for too long
                        self._stall(now - last_frame, "the read timed out")
                    elif self.is_live:
                        log.warning("%s: stream ended or timed out", self._who())
                    return got
                if self.is_live and now - last_frame > opts.stall_timeout_s:
                    # nothing new for too long; a frame now is one the decoder had buffered
                    self._stall(now - last_frame)
                    return got
                if status == "error":
                    self._stats.on_error()
                    self._log_corrupt(self._index, now)
                    self._index += 1
                    continue
                last_frame = now
                self._set_progress(gen, now)
                if self.is_live:
                    self._note_arrival(now)
                index, self._index = self._index, self._index + 1
                if image is None:  # skipped by stride
                    continue
                got = True
                self._set_progress(gen, None)  # waiting for the consumer is not a stall
                self._emit(index, image, now)
                last_frame = time.monotonic()
                self._set_progress(gen, last_frame)
                if opts.realtime and not self.is_live:
                    self._stop.wait(max(0.0, t0 + (index - first_index + 1) / self._fps - time.monotonic()))
            return got
        finally:
            self._set_progress(gen, None)

    def _log_corrupt(self, index: int, now: float) -> None:
        """The first CORRUPT_LOG_FIRST corrupt frames one line each, then one line with a
        count at most every CORRUPT_LOG_EVERY_S (the end of a recording summarises)."""
        n = self._stats.errors
        if n <= CORRUPT_LOG_FIRST:
            more = "; further ones are counted and summarised" if n == CORRUPT_LOG_FIRST else ""
            log.warning("%s: corrupt frame %d skipped%s", self._who(), index, more)
        elif now - self._corrupt_logged_at >= CORRUPT_LOG_EVERY_S:
            log.warning("%s: %d more corrupt frames in the last %.0f s (latest: frame %d; %d in all)",
                        self._who(), n - self._corrupt_logged, now - self._corrupt_logged_at, index, n)
        else:
            return
        self._corrupt_logged, self._corrupt_logged_at = n, now

    def _note_arrival(self, now: float) -> None:
        """A source frame of a live connection arrived at ``now`` (monotonic): decide the frame rate once the
        first connection has delivered frames for RATE_SETTLE_S + RATE_MEASURE_S (see :meth:`wait_fps`)."""
        with self._rate_lock:
            if self._rate is not None:
                return
            times = self._rate_times
            times.append(now)
            if now - times[0] < RATE_SETTLE_S + RATE_MEASURE_S:
                return
            window = [t for t in times if t >= times[0] + RATE_SETTLE_S]
            if len(window) < 2 or window[-1] <= window[0]:
                return
            measured = (len(window) - 1) / (window[-1] - window[0])
            announced = self._rate_announced
            if announced and abs(measured - announced) <= RATE_AGREE * announced:
                rate, how = announced, "as the stream announces"
            else:
                rate = max(0.1, round(measured, 1))
                how = (f"measured; the stream announces {announced:g} fps" if announced
                       else "measured; the stream announces none")
            self._rate, self._rate_times = rate, []
        self._fps = self.opts.fps or rate
        self._rate_known.set()
        log.info("%s: %g fps (%s)", self._who(), rate, how)

    def _check_size(self, image) -> None:
        """Warn when the frame size changes (a camera that came back with another resolution)."""
        size = (int(image.shape[1]), int(image.shape[0]))
        if self._size is not None and size != self._size:
            log.warning("%s: frame size changed from %dx%d to %dx%d: boxes, MOT coordinates and a pixel roi now"
                        " refer to the new size (the annotated video keeps the first size)", self._who(),
                        *self._size, *size)
        self._size = size

    def _emit(self, index: int, image, now: float) -> None:
        if self._stop.is_set():  # a read that returned after the stop: the source is finished
            return
        self._check_size(image)
        if self.timestamp_mode == "wall":
            ts = time.time()
        else:
            ts = self.opts.start_time + index / self._fps
        self._stats.on_frame(now)
        self._stats.set_state("streaming")
        self._last_good = now
        self._first.set()
        self._buffer.put(Frame(cam_id=self.cam_id, index=index, timestamp=ts, image=image), self._stop)
