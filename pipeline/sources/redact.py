"""Keep credentials out of logs and error messages.

Camera URIs often carry a user and password (``rtsp://admin:secret@10.0.0.5/stream``)
or a token in the query string. Every log line and every error that names a source
goes through :func:`redact_uri` (one URI) or :func:`redact_text` (free text that may
contain URIs, e.g. an OpenCV exception message).
"""

from __future__ import annotations

import logging
import re

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://)(.*)$", re.DOTALL)
# scheme://<anything up to the last '@' before whitespace, '?' or '#'>@
_TEXT_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^\s?#]*@")
_SECRET_KEYS = r"(?:password|passwd|pwd|pass|token|access_token|api_key|apikey|key|secret|auth|signature|sig)"
_QUERY_SECRET_RE = re.compile(rf"([?&;]{_SECRET_KEYS}=)[^&#\s]*", re.IGNORECASE)


def redact_uri(uri: str) -> str:
    """``rtsp://user:pass@host:554/x?token=abc`` -> ``rtsp://***@host:554/x?token=***``.

    The user-info part (everything up to the last ``@`` before any ``?``/``#``, so
    passwords containing ``@`` or ``/`` are hidden too) becomes ``***`` and the values
    of secret-looking query keys (password, token, key, auth, ...) become ``***``.
    Paths and webcam indices are returned unchanged.
    """
    text = str(uri)
    m = _SCHEME_RE.match(text)
    if m is None:
        return text
    scheme, rest = m.groups()
    cut = min([i for i in (rest.find("?"), rest.find("#")) if i >= 0], default=len(rest))
    at = rest.rfind("@", 0, cut)
    if at >= 0:
        rest = "***@" + rest[at + 1 :]
    return scheme + _QUERY_SECRET_RE.sub(r"\1***", rest)


def redact_text(text: str) -> str:
    """Redact every ``scheme://user:pass@`` and secret query value inside free text."""
    out = _TEXT_USERINFO_RE.sub(r"\1***@", str(text))
    return _QUERY_SECRET_RE.sub(r"\1***", out)


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
