"""``outputs.mqtt`` of cams.yaml: where and how the MQTT event sink publishes (see docs/mqtt.md).

The password is a :class:`pydantic.SecretStr`: a config dump (the run's config in the store, the
batch run key's hash, a log line) shows ``**********``, never the password. ``password_env`` names
an environment variable read when the sink connects, so the password need not be in the file.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from pipeline.core.configio import StrictModel
from pipeline.core.errors import ConfigError

# MQTT topics and client ids are UTF-8 strings of at most 65535 bytes; the prefix is kept far below that, as
# ``/identities/<global_id>`` and ``/<camera>/person`` are appended to it
MAX_TOPIC_PREFIX_BYTES = 1024
MAX_CLIENT_ID_BYTES = 65535
PORTABLE_CLIENT_ID_CHARS = 23  # MQTT 3.1.1: a broker must accept 1-23 characters of [0-9a-zA-Z]; more may be refused
MAX_BASE_URL_CHARS = 2048  # it is copied into every message (thumbnail_url)
URL_FORBIDDEN = set('"<>`{}|\\^\'')


def _bad_chars(text: str) -> bool:
    """True when ``text`` holds a control character (C0, DEL, C1: U+0000-001F, U+007F-009F, which MQTT forbids or
    advises against), a lone surrogate (not encodable as UTF-8), or a non-character such as U+FFFF."""
    return any(unicodedata.category(c) in ("Cc", "Cs") or unicodedata.category(c) == "Cn" and (
        0xFDD0 <= ord(c) <= 0xFDEF or ord(c) & 0xFFFE == 0xFFFE) for c in text)


class MqttTlsSettings(StrictModel):
    """TLS to the broker (paho's ``tls_set``): ``ca_certs`` null = the system's CAs; ``certfile``/``keyfile``:
    a client certificate; ``insecure``: skip the host name check (self-signed test brokers only)."""

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False


class MqttSettings(StrictModel):
    """Publish every event (appear / handover / leave / merge / split) to ``<topic_prefix>/events``.

    ``qos`` 1 (default): at least once; each payload carries a stable ``id`` for de-duplication.
    ``protocol``: ``3.1.1`` (default, every broker) or ``5``. With 5 a broker that refuses a message (an ACL
    denies the topic: PUBACK/PUBREC reason code >= 0x80, e.g. 0x87 Not authorized) is counted as refused, not
    acknowledged; MQTT 3.1.1 has no way to say so (the broker acknowledges a denied message like any other).
    ``base_url``: the console's address (``http://host:port``) for ``thumbnail_url``; null = no URL.
    ``buffer_size``: events handed to the client but not yet acknowledged by the broker (kept while it
    is down); when full, new events are dropped from MQTT only (counted and logged; they stay in the
    store and events.jsonl). ``flush_timeout_s``: at the end of a run, how long to wait for the broker
    to acknowledge what is buffered. ``reconnect_min_s`` / ``reconnect_max_s``: the reconnect backoff
    (doubling from min to max).

    State topics (retained, the latest value only; docs/mqtt.md): ``camera_counts`` publishes the number of
    people in view of each camera to ``<topic_prefix>/<camera>/person`` (as Frigate's
    ``frigate/<camera>/person``); ``identity_state`` publishes each identity's state (in view, on which
    cameras, last seen where and when) to ``<topic_prefix>/identities/<global_id>`` and clears the topic of
    an identity a merge absorbed. Off by default: a site keeps one retained message per identity it ever
    saw on the broker. ``state_max_identities``: the state keeps the last sighting of this many identities
    (the most recently seen; memory stays bounded over a run of any length).
    """

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = "reid"
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    password_env: str | None = None
    qos: Literal[0, 1, 2] = 1
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    base_url: str | None = None
    buffer_size: int = Field(10_000, ge=1, le=50_000)  # below paho's 65535 message ids
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    flush_timeout_s: float = Field(10.0, ge=0)
    tls: MqttTlsSettings | None = None
    camera_counts: bool = True
    identity_state: bool = False
    state_max_identities: int = Field(10_000, ge=1)

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, v: object) -> object:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v  # protocol: 5 in YAML

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v or "://" in v or "/" in v or _bad_chars(v) or v != v.strip() or " " in v:
            raise ValueError("a broker host name or address such as broker.lan or 192.168.1.5 (not a URL: the port"
                             " is outputs.mqtt.port, TLS is outputs.mqtt.tls)")
        return v

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        problem = None
        if not v or v.startswith("/") or v.endswith("/") or "//" in v:
            problem = "an empty topic level (a leading, trailing or doubled '/')"
        elif v.startswith("$"):
            problem = "a leading '$' (MQTT keeps $ topics, such as $SYS, for the broker, which refuses them)"
        elif any(c in v for c in "+#"):
            problem = "a wildcard (+ or #)"
        elif _bad_chars(v):
            problem = "a control character or an invalid character (NUL, newline, tab, a lone surrogate)"
        elif any(level != level.strip() for level in v.split("/")):
            problem = "spaces around a topic level"
        elif len(v.encode("utf-8")) > MAX_TOPIC_PREFIX_BYTES:
            problem = f"{len(v.encode('utf-8'))} bytes (UTF-8); the limit is {MAX_TOPIC_PREFIX_BYTES}"
        if problem:
            raise ValueError(f"a topic prefix like 'reid' or 'site/reid' is needed; this one has {problem}")
        return v

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v or _bad_chars(v):
            raise ValueError("a client id of printable characters (MQTT 3.1.1 brokers need only accept 1-23 of"
                             " [0-9a-zA-Z]); null = reid-<host>-<pid>")
        if len(v.encode("utf-8")) > MAX_CLIENT_ID_BYTES:
            raise ValueError(f"a client id of at most {MAX_CLIENT_ID_BYTES} bytes (MQTT's limit; keep it to 23"
                             f" characters for strict MQTT 3.1.1 brokers); this one has {len(v.encode('utf-8'))}")
        return v

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str | None) -> str | None:
        if v is None:
            return None
        bad = (not v.lower().startswith(("http://", "https://")) or len(v) > MAX_BASE_URL_CHARS or _bad_chars(v)
               or any(c.isspace() or c in URL_FORBIDDEN for c in v))
        if not bad:
            try:
                parts = urlsplit(v)
                bad = not parts.hostname or bool(parts.query or parts.fragment)
                parts.port  # noqa: B018 (raises ValueError for a port that is not a number 0-65535)
            except ValueError:
                bad = True
        if bad:
            raise ValueError("an http:// or https:// address of the console, e.g. http://192.168.1.10:8080 (at most"
                             f" {MAX_BASE_URL_CHARS} characters; no spaces, quotes, <, >, query or fragment)")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _one_password(self) -> MqttSettings:
        if self.password is not None and self.password_env is not None:
            raise ValueError("give password or password_env, not both")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self

    def with_paths(self, resolve: Callable[[str], str]) -> MqttSettings:
        """A copy whose TLS file paths went through ``resolve`` (the config loader: relative to cams.yaml)."""
        if self.tls is None:
            return self
        files = {k: resolve(v) for k in ("ca_certs", "certfile", "keyfile") if (v := getattr(self.tls, k)) is not None}
        return self.model_copy(update={"tls": self.tls.model_copy(update=files)})

    def resolved_password(self) -> str | None:
        """The password: ``password``, or the variable ``password_env`` names (ConfigError when it is unset)."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError(f"outputs.mqtt.password_env: environment variable {self.password_env} is not set")
            return value
        return None
