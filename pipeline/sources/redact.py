"""Keep credentials out of logs and error messages.

Camera URIs often carry a user and password (``rtsp://admin:secret@10.0.0.5/stream``)
or a token in the query string. Every log line and every error that names a source
goes through :func:`redact_uri` (one URI) or :func:`redact_text` (free text that may
contain URIs, e.g. an OpenCV exception message); anything persisted that may hold a URI
(the run's config in the store) through :func:`redact_data` / :func:`redact_json`. The CLI
also puts :class:`RedactFilter` on its log handlers and redacts its one-line errors.
This module is the project's one redaction: extend it here, never copy it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)(.*)$", re.DOTALL)
# a URI inside free text: the scheme and everything up to the next whitespace (a password may hold any other
# character, quotes and '#' included; a password with a space cannot be told from the text around it)
_TEXT_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
# what may follow the user-info '@': a host (name, IPv4 or [IPv6]) and an optional port, then the end, the path,
# the query, the fragment, or what ends a URI inside text (a quote, a bracket, a comma)
_AUTHORITY_RE = re.compile(r"(?:\[[0-9A-Za-z:.%_\-]*\]|[A-Za-z0-9.\-_~%]+)(?::\d*)?(?=$|[/?#\s\"'`),;>\]}])")
# a key is secret when it contains one of these words (password, passwd, pwd, loginpas, user, usr, loginuse,
# X-Amz-Signature, client_secret, session_id, api-key, passphrase, ...): redacting a harmless value too is the safe
# mistake. User names are redacted as well: the user-info (``user:pass@``) hides them too.
_SECRET_WORDS = (r"(?:pas|pw|psw|psd|token|key|secret|auth|sig|session|credential|cred|jwt|bearer|cookie|otp"
                 r"|user|usr|login)")
# in a query or fragment: ``?password=x``, ``&loginpas=x``, ``#access_token=x``; the value runs to the next '&'
# (a raw '#' or ';' inside it does not end it)
_QUERY_SECRET_RE = re.compile(rf"([?&;#][\w.\-]*{_SECRET_WORDS}[\w.\-]*=)[^&\s]*", re.IGNORECASE)
# in a path: ``/user=admin&password=x``, the XMEye form ``/user=admin_password=x_channel=1_stream=0.sdp``; the
# value runs to the next '/', '&', ';' or ``_<key>=``
_PATH_SECRET_RE = re.compile(
    rf"((?:(?<=[/_&;])|^)[A-Za-z0-9.\-]*{_SECRET_WORDS}[A-Za-z0-9.\-]*=).*?(?=_[A-Za-z][A-Za-z0-9.\-]*=|[/&;\s]|$)",
    re.IGNORECASE)


def _userinfo_end(rest: str) -> int:
    """The index of the '@' that ends the user-info of ``rest`` (a URI after ``scheme://``), -1 when it has none.

    The last '@' that a host[:port] follows. A password may hold raw '@', '/', '?', '#' and ':', so neither the
    first '@' nor the first '?'/'#' can be trusted; an '@' in the path or query (``?mail=a@b.example``) then hides
    the host as well, the safe mistake. With no such '@', the last '@' of all."""
    ats = [i for i, c in enumerate(rest) if c == "@"]
    for at in reversed(ats):
        if _AUTHORITY_RE.match(rest, at + 1):
            return at
    return ats[-1] if ats else -1


def _redact_rest(rest: str) -> str:
    """Redact ``rest``, a URI after ``scheme://``: user-info, secret path parameters, secret query values."""
    at = _userinfo_end(rest)
    prefix = ""
    if at >= 0:
        prefix, rest = "***@", rest[at + 1:]
    cut = min([i for i in (rest.find("?"), rest.find("#")) if i >= 0], default=len(rest))
    path, query = rest[:cut], rest[cut:]
    return prefix + _PATH_SECRET_RE.sub(r"\1***", path) + _QUERY_SECRET_RE.sub(r"\1***", query)


# RTMP-family URIs carry the publish / play key as the last path segment (``rtmp://host/app/<stream key>``)
_STREAM_KEY_SCHEMES = ("rtmp://", "rtmps://", "rtmpt://", "rtmpe://", "rtmpte://", "rtmpts://")
# a scheme-less user-info (``admin:pw@10.0.0.5:554/s``, a source written without ``rtsp://``): where its user
# may start inside a whitespace-free token (the token's start or after a quote, bracket, '=' or ','), a user
# without those characters, then ':' that does not begin '//'
_BARE_USER_RE = re.compile(r"(?:^|(?<=[\"'(\[{<=,]))[^\s/@:\"'(\[{<=,]+:(?!//)")


def _redact_stream_key(scheme: str, rest: str) -> str:
    """``host/app/KEY`` -> ``host/app/***`` for the RTMP family (``rest`` is a URI after its scheme, user-info
    already redacted); anything else unchanged."""
    if scheme.lower() not in _STREAM_KEY_SCHEMES:
        return rest
    cut = min([i for i in (rest.find("?"), rest.find("#")) if i >= 0], default=len(rest))
    path, query = rest[:cut], rest[cut:]
    parts = path.split("/")  # [authority, app, ..., key]
    if len(parts) >= 3 and parts[-1]:
        # what ends a URI inside text (``rtmp://h/app/KEY: refused``) is not part of the key
        parts[-1] = "***" + re.search(r"[:;,.)\]}'\"`>]*$", parts[-1]).group(0)
    return "/".join(parts) + query


def _redact_bare_userinfo(token: str) -> str:
    """A whitespace-free ``token`` without ``scheme://`` in which ``user:password@host`` appears: the user-info
    becomes ``***`` (the same last-'@'-before-a-host rule as URIs). Anything else unchanged."""
    if "@" not in token or "://" in token:
        return token
    for m in _BARE_USER_RE.finditer(token):
        rest = token[m.start():]
        at = _userinfo_end(rest)
        if at > 0:  # a host after the '@' or not (the safe mistake)
            return token[:m.start()] + "***@" + rest[at + 1:]
    return token


def redact_uri(uri: str) -> str:
    """``rtsp://user:pass@host:554/x?token=abc`` -> ``rtsp://***@host:554/x?token=***``.

    The user-info (everything from ``scheme://`` to the last ``@`` that a host follows, so a password holding
    raw ``@``, ``/``, ``?`` or ``#`` is hidden whole) becomes ``***``; so do the values of secret-looking keys
    (password, pwd, pass, loginpas, user, usr, token, key, auth, ...) in the query and fragment, and in the path
    (``/user=admin_password=x_channel=1_stream=0.sdp``, ``/user=a&password=x``); the stream key of an RTMP-family
    URI (``rtmp://host/app/KEY`` -> ``rtmp://host/app/***``). Without a scheme, a ``user:password@host`` prefix
    (a camera address written without ``rtsp://``) is hidden the same way; other local paths and webcam indices
    are returned unchanged.
    """
    text = str(uri)
    m = _SCHEME_RE.match(text)
    if m is None:
        return _redact_bare_userinfo(text) if not any(c.isspace() for c in text) else text
    scheme, rest = m.groups()
    return scheme + _redact_stream_key(scheme, _redact_rest(rest))


_CLOSERS = {")": "(", "]": "[", "}": "{", ">": "<"}


def _redact_text_uri(m: re.Match) -> str:
    """One URI found in free text, redacted; a closing bracket it does not open (``(rtsp://h/s?token=x)``) or the
    quote that opened it (``'rtsp://...'``) is text around it, kept after the redacted URI (a secret query value
    would otherwise swallow it)."""
    uri, tail = m.group(0), ""
    before = m.string[m.start() - 1] if m.start() > 0 else ""
    while uri:
        last = uri[-1]
        if (last in _CLOSERS and uri.count(_CLOSERS[last]) < uri.count(last)) or (last in "'\"`" and last == before):
            uri, tail = uri[:-1], last + tail
            continue
        break
    return redact_uri(uri) + tail


def redact_text(text: str) -> str:
    """Redact every URI inside free text (each from its ``scheme://`` to the next whitespace, as
    :func:`redact_uri`), a ``user:password@host`` written without a scheme, and secret ``?key=value`` /
    ``&key=value`` pairs outside URIs."""
    out = _TEXT_URI_RE.sub(_redact_text_uri, str(text))
    out = re.sub(r"\S*@\S*", lambda m: _redact_bare_userinfo(m.group(0)), out)
    # secret pairs outside URIs; a value the URI pass already hid stays as it is (with what follows it)
    return _QUERY_SECRET_RE.sub(lambda m: m.group(0) if m.group(0)[len(m.group(1)):].startswith("***")
                                else m.group(1) + "***", out)


# a dict key whose value is a secret as a whole (``password``, ``token``, ``ui.token``, ``api_key``,
# ``client_secret``, ...); ``password_env`` / ``token_env`` name a variable, not a secret, and stay
_SECRET_KEY_RE = re.compile(r"(?:^|[_\-.])(?:password|passwd|passphrase|pwd|token|secret|api[_\-]?key|access[_\-]?key"
                            r"|private[_\-]?key|credentials?|cookie)$", re.IGNORECASE)
MASK = "**********"  # what pydantic shows for a SecretStr


def redact_data(data: Any) -> Any:
    """A copy of JSON-like ``data`` (dicts, lists, tuples, scalars) with :func:`redact_uri` applied to every
    string that is a URI and :func:`redact_text` to every other string, keys included, and the value of every
    secret-named key (``password``, ``token``, ``api_key``, ``*_secret``, ...) replaced by ``**********``: use it
    on anything persisted (a config dump, a summary)."""
    if isinstance(data, str):
        return redact_uri(data) if _SCHEME_RE.match(data) and "\n" not in data else redact_text(data)
    if isinstance(data, dict):
        return {redact_data(k): MASK if _secret_key(k, v) else redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_data(v) for v in data)
    return data


def _secret_key(key: Any, value: Any) -> bool:
    return isinstance(key, str) and isinstance(value, str) and value != "" and bool(_SECRET_KEY_RE.search(key))


def redact_json(data: Any) -> str:
    """``json.dumps(redact_data(data), default=str)``: the form in which a run's config is stored."""
    return json.dumps(redact_data(data), default=str)


class RedactFilter(logging.Filter):
    """A logging filter that redacts credentials in a record's final message.

    Defence in depth for handlers that may receive messages from code that did not
    call :func:`redact_uri` itself (e.g. third-party libraries logging a URL).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True
