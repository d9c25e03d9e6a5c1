"""Who may reach the console: loopback by default, a token for anything else.

* :func:`check_bind` refuses a non-loopback bind without a token (one-line :class:`ConfigError`), so an
  unauthenticated console is never reachable from another machine by mistake.
* :func:`token_ok` checks a request's credentials: ``Authorization: Bearer <token>``, the ``reid_token``
  cookie (set after a first visit with ``?token=<token>``), or the ``token`` query parameter; compared in
  constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import socket

from pipeline.core.errors import ConfigError

COOKIE = "reid_token"


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and 'localhost'; names are resolved (every address must be loopback)."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addrs = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def check_bind(host: str, token: str | None, where: str = "ui.host") -> None:
    """Raise ConfigError when ``host`` is not loopback and there is no token."""
    if not is_loopback_host(host) and not token:
        raise ConfigError(
            f"{where}: {host} is not a loopback address and no token is set; refusing to serve the console"
            " unauthenticated (set ui.token / --token or REID_UI_TOKEN, or bind 127.0.0.1)")


def token_ok(expected: str | None, header: str | None, cookie: str | None, query: str | None) -> bool:
    """Whether a request may pass: no token configured, or one of its credentials equals it."""
    if not expected:
        return True
    given = []
    if header and header.lower().startswith("bearer "):
        given.append(header[7:].strip())
    given += [v for v in (cookie, query) if v]
    return any(hmac.compare_digest(g.encode(), expected.encode()) for g in given)
