"""Serve the console with uvicorn: in a background thread beside a run (``ui.enabled``), or in the
foreground for ``reid-pipeline serve``.

:class:`ConsoleServer` opens its own read-only connection to the store (the run keeps the writer lock),
checks the bind rule first (:func:`pipeline.web.security.check_bind`: a non-loopback address needs a
token) and binds before it opens the store (:meth:`ConsoleServer.reserve` binds even earlier, for a caller that
opens other things first), so a taken port fails the start with one line. Without a token, only requests whose
``Host`` is a loopback name or address, the bind address or one of ``allowed_hosts`` (default:
``$REID_UI_ALLOWED_HOSTS``) are answered.
:meth:`ConsoleServer.stop` ends open event streams and waits for the thread (at most ``stop_timeout_s``).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.core.errors import ConfigError
from pipeline.web.live import LiveFrames
from pipeline.web.security import check_bind

log = logging.getLogger(__name__)


def unbracket(host: str) -> str:
    """A bind address as sockets take it: '[::1]' (the URL form) is '::1'."""
    host = host.strip()
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port) (port 0: a free one; '[::1]' is '::1'); ConfigError naming the
    address on failure."""
    host = unbracket(host)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"console: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class ConsoleServer:
    """The console app for one store, served by uvicorn on (host, port)."""

    def __init__(self, store_path: Path, encoder_factory: Callable[[], Any], host: str = "127.0.0.1",
                 port: int = 8080, token: str | None = None, live: LiveFrames | None = None,
                 cameras: dict[str, str] | None = None, stop_timeout_s: float = 5.0,
                 allowed_hosts: list[str] | tuple[str, ...] | None = None) -> None:
        check_bind(host, token, "console host")
        host = unbracket(host)
        self.host, self.port, self.token = host, int(port), token
        self.allowed_hosts = tuple(allowed_hosts or ())
        self.store_path = Path(store_path)
        self.encoder_factory = encoder_factory
        self.live = live
        self.cameras = dict(cameras or {})
        self.stop_timeout_s = stop_timeout_s
        self._server = None
        self._thread: threading.Thread | None = None
        self._console = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def _build(self):
        import uvicorn

        from pipeline.store import IdentityStore
        from pipeline.web.app import Console, create_app
        from pipeline.web.search import PhotoSearch

        if self._sock is None:  # bound first: a taken port fails before the store is opened
            self.reserve()
        store = IdentityStore(self.store_path, mode="read")
        self._console = Console(store=store, search=PhotoSearch(self.encoder_factory), live=self.live,
                                cameras=self.cameras, token=self.token, bind_host=self.host,
                                allowed_hosts=self.allowed_hosts)
        config = uvicorn.Config(create_app(self._console), log_level="warning", access_log=False,
                                timeout_graceful_shutdown=1, lifespan="off")
        self._server = uvicorn.Server(config)

    def reserve(self) -> ConsoleServer:
        """Bind the listening socket now (ConfigError on a taken port), before anything else is opened;
        :meth:`start` / :meth:`serve_forever` then serve on it."""
        if self._sock is None:
            self._sock = bind_socket(self.host, self.port)
            self.port = self._sock.getsockname()[1]
        return self

    def start(self) -> ConsoleServer:
        """Serve in a daemon thread; returns once the server accepts connections."""
        try:
            self._build()
        except BaseException:
            self._close()
            raise
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self._server.started:
            self.stop()
            raise ConfigError(f"console: the server on {self.url} did not start")
        log.warning("console on %s", self.url)
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C / SIGTERM (uvicorn's own signal handling)."""
        try:
            self._build()
        except BaseException:
            self._close()
            raise
        print(f"reid-pipeline console on {self.url} (Ctrl-C to stop)", flush=True)
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self._close()

    def stop(self) -> None:
        if self._console is not None:
            self._console.stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(self.stop_timeout_s)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(self.stop_timeout_s)
        self._close()

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._console is not None:
            self._console.store.close()
            self._console = None
