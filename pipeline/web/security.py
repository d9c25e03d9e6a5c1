"""Who may reach the console: loopback by default, a token for anything else.

* :func:`check_bind` refuses a non-loopback bind without a token (one-line :class:`ConfigError`), so an
  unauthenticated console is never reachable from another machine by mistake.
* :func:`token_ok` checks a request's credentials: ``Authorization: Bearer <token>``, the ``reid_token``
  cookie (set after a first visit with ``?token=<token>``), or the ``token`` query parameter; compared in
  constant time.
* :func:`host_allowed` (DNS rebinding): without a token the console answers only a ``Host`` that is a loopback
  name or address, its bind address, or an allowed name (:func:`trusted_hosts`).
* :func:`same_origin`: a POST's ``Origin`` / ``Referer`` must be the console's own (cross-site POSTs refused).
"""

from __future__ import annotations

import hmac
import ipaddress
import re
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


#: the largest id SQLite stores (INTEGER is a signed 64-bit value); larger ids are refused with 422, never queried
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
LOOPBACK_NAMES = ("localhost",)


def split_host(value: str | None) -> str | None:
    """The host part of a ``Host`` header or URL netloc ('[::1]:8080' -> '::1', 'A.example:80' -> 'a.example');
    None when it is missing or malformed."""
    if not value:
        return None
    value = value.strip().lower()
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        port_ok = rest == "" or (rest.startswith(":") and rest[1:].isdigit())
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        return host if sep and port_ok else None
    host, _, port = value.partition(":")
    if not host or (port and not port.isdigit()) or any(c in host for c in "/@?#\\[] \t"):
        return None
    return host


_HOST_NAME_RE = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_\-]{0,62}))*\.?$")


def check_host_name(value: str) -> str:
    """An allowed Host name as given (``proxy.lan``, ``192.168.1.10``, ``[fd00::5]`` or ``fd00::5``), stripped;
    ValueError (one line) for anything else: a scheme, a port, a path, spaces, a wildcard, an empty value."""
    raw = str(value).strip()
    bare = raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw
    try:
        ipaddress.ip_address(bare)
        return raw
    except ValueError:
        pass
    if raw == bare and _HOST_NAME_RE.match(raw):
        return raw
    raise ValueError(f"{str(value)!r} is not a host name or IP address (no scheme, port, path or wildcard;"
                     " e.g. proxy.lan or 192.168.1.10)")


def trusted_hosts(bind_host: str, extra: list[str] | tuple[str, ...] = ()) -> frozenset[str]:
    """Host names (no port, no brackets, lower case) a console bound to ``bind_host`` answers to: the loopback
    names, the bind address itself and ``extra`` (e.g. a reverse proxy's name). Loopback IP literals are always
    accepted as well (:func:`host_allowed`)."""
    names = {*LOOPBACK_NAMES, bind_host.strip().strip("[]").lower()}
    names.update(h.strip().strip("[]").lower() for h in extra if h.strip())
    return frozenset(names)


def host_allowed(host_header: str | None, allowed: frozenset[str]) -> bool:
    """Whether a request's ``Host`` names this console (DNS rebinding protection): a name in ``allowed`` or a
    loopback IP literal, any port."""
    host = split_host(host_header)
    if host is None:
        return False
    if host in allowed:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_origin(origin: str, host_header: str | None, extra: frozenset[str] = frozenset()) -> bool:
    """Whether ``origin`` (an ``Origin`` header or a ``Referer`` URL) is the console's own origin: its host:port
    equals the request's ``Host`` (scheme ignored, so a TLS proxy in front works), or its host is one of ``extra``.
    'null' and anything unparsable are not."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    netloc = parts.netloc.lower().rsplit("@", 1)[-1]
    if host_header and netloc == host_header.strip().lower():
        return True
    default = {"http": ":80", "https": ":443"}[parts.scheme]
    if host_header and netloc + default == host_header.strip().lower():
        return True
    host = split_host(netloc)
    return host is not None and host in extra
