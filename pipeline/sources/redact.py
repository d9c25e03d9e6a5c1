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
# scheme://<anything up to the last '@' before whitespace, '?' or '#'>@
_TEXT_USERINFO_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^\s?#]*@")
# a query/fragment key is secret when it contains one of these words (X-Amz-Signature, client_secret,
# session_id, api-key, passphrase, ...): redacting a harmless value too is the safe mistake
_SECRET_WORDS = r"(?:pass|pwd|token|key|secret|auth|sig|session|credential|cred|jwt|bearer|cookie|otp)"
_QUERY_SECRET_RE = re.compile(rf"([?&;#][\w.\-]*{_SECRET_WORDS}[\w.\-]*=)[^&#\s]*", re.IGNORECASE)


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


def redact_data(data: Any) -> Any:
    """A copy of JSON-like ``data`` (dicts, lists, tuples, scalars) with :func:`redact_text` applied
    to every string, keys included: use it on anything persisted (a config dump, a summary)."""
    if isinstance(data, str):
        return redact_text(data)
    if isinstance(data, dict):
        return {redact_data(k): redact_data(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_data(v) for v in data)
    return data


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
