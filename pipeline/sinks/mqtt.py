"""MQTT event sink: every event also goes to ``<topic_prefix>/events``, in the style of Frigate's ``frigate/events``.

Topics (docs/mqtt.md)::

    <prefix>/events      one JSON object per event, QoS ``qos`` (1: at least once), not retained
    <prefix>/available   "online" (retained) while connected; "offline" at the end or, as the broker's
                         last will, when the connection is lost
    <prefix>/<camera>/person      people in view of the camera, retained (``camera_counts``)
    <prefix>/identities/<gid>     one identity's state as JSON, retained (``identity_state``; an
                                  identity absorbed by a merge gets an empty retained message: cleared)

Payload (:func:`mqtt_payload`)::

    {"type": "handover", "id": "9c0d5e2b7f31a4c8", "label": "person", "global_id": 3, "camera": "right",
     "time": 12.4, "confidence": 0.82, "thumbnail_url": "http://host:8080/api/identities/3/thumbnail.jpg",
     "details": {"track_id": 5, "frame": 88, "new": false, "distance": 0.18, "from_cam": "left", "transit_s": 2.1}}

``id`` (:func:`event_id`) is stable: the same event re-emitted (a resumed batch run, a QoS 1 resend)
has the same id, so a consumer de-duplicates on it. ``confidence`` is the
match's calibrated probability of being the same person (``probability`` in the event, see
pipeline/matching/confidence.py), null where the event has none (a new identity, leave, before calibration).

Connection problems are logged while the run goes on (a live run never reaches its close summary): the
first failed attempt at once as one warning naming ``host:port`` and the reason (connection refused, a name
that does not resolve, a TLS handshake error, a CONNACK refusal such as Not authorized), then again at most
at a doubling interval (5 s, 10 s, ... up to once a minute, :class:`LogThrottle`) with the number of attempts
that failed meanwhile; a changed reason is logged at once. ``protocol: "5"``: a message the broker refuses
(PUBACK/PUBREC reason code >= 0x80, e.g. an ACL denial) is counted in :attr:`MqttStats.refused`, not as
acknowledged, and logged the same way. MQTT 3.1.1 cannot tell: a broker acknowledges a denied PUBLISH like any
other (or drops the connection, after which the message stays unacknowledged and is re-sent).

Delivery: :meth:`MqttEventSink.emit` never blocks the pipeline. paho-mqtt's network thread connects,
reconnects with a doubling backoff, and re-sends every QoS >= 1 message the broker has not
acknowledged (PUBACK) after each reconnect; acknowledged messages are never sent again. At most
``buffer_size`` messages wait for an acknowledgement (the broker is down or slow); beyond that a new
event is dropped from MQTT only (counted in :attr:`MqttStats.dropped`, logged; it is still in the
store and events.jsonl). QoS 0 messages published while disconnected are lost (paho does not queue
them). :meth:`MqttEventSink.close` waits up to ``flush_timeout_s`` for the rest.

State topics carry the latest value only: while the broker is away the sink keeps the newest payload per
topic (:class:`~pipeline.sinks.presence.Presence` derives them from the events) and publishes those with the
first event after the reconnect (or at close), so an outage costs no memory beyond one message per topic.
They are published from the pipeline's thread only, so a topic's messages leave in the order of its values.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.health import OutputHealth
from pipeline.sinks.events import EVENT_KINDS
from pipeline.sinks.mqtt_settings import PORTABLE_CLIENT_ID_CHARS, MqttSettings
from pipeline.sinks.presence import Presence, PresenceChange

log = logging.getLogger(__name__)

LABEL = "person"  # Frigate's "label": the kind of object (this pipeline tracks people)


def event_id(event: dict[str, Any]) -> str:
    """16 hex digits of SHA-1 over what identifies an event: kind, global id, camera, time (ms; the store's
    unique key) and, when present, the track id and the identity ids of a merge/split."""
    key = [event["kind"], int(event["global_id"]), event["cam_id"], f"{float(event['t']):.3f}",
           event.get("track_id"), event.get("ids")]
    return hashlib.sha1(json.dumps(key, separators=(",", ":")).encode()).hexdigest()[:16]


def default_client_id() -> str:
    """``reid-<host>-<pid>``: unique per running process (two clients with one id would keep taking over each
    other's session)."""
    return f"reid-{socket.gethostname()[:32]}-{os.getpid()}"


def thumbnail_url(base_url: str | None, global_id: int) -> str | None:
    """``{base_url}/api/identities/{global_id}/thumbnail.jpg`` (served by the console), None without a base URL."""
    return None if base_url is None else f"{base_url.rstrip('/')}/api/identities/{int(global_id)}/thumbnail.jpg"


def confidence(event: dict[str, Any]) -> float | None:
    """The event's calibrated link probability (P(same person) of the match, the matcher's ``probability``
    when the runner put it in the payload), else None (a new identity, leave, no calibration yet)."""
    for key in ("probability", "confidence"):
        value = event.get(key)
        if value is not None:
            return round(float(value), 4)
    return None


def mqtt_payload(event: dict[str, Any], base_url: str | None = None) -> dict[str, Any]:
    """The JSON object published for one event (an events.jsonl line: kind, global_id, cam_id, t, payload...)."""
    core = ("kind", "global_id", "cam_id", "t")
    return {
        "type": event["kind"],
        "id": event_id(event),
        "label": LABEL,
        "global_id": int(event["global_id"]),
        "camera": event["cam_id"],
        "time": float(event["t"]),
        "confidence": confidence(event),
        "thumbnail_url": thumbnail_url(base_url, event["global_id"]),
        "details": {k: v for k, v in event.items() if k not in core},
    }


class LogThrottle:
    """When to repeat a warning about a lasting problem: the first time at once, then only once ``interval``
    seconds have passed, the interval doubling from ``first_s`` to ``max_s``; a different ``reason`` is said at
    once. :meth:`ready` returns None (stay silent) or how many occurrences were kept quiet since the last line;
    :meth:`reset` when the problem is over."""

    def __init__(self, first_s: float = 5.0, max_s: float = 60.0, clock=time.monotonic) -> None:
        self.first_s, self.max_s, self.clock = first_s, max_s, clock
        self.reset()

    def reset(self) -> None:
        self._next: float | None = None
        self._interval = self.first_s
        self._reason: str | None = None
        self._quiet = 0
        self.count = 0  # occurrences since the reset

    def ready(self, reason: str) -> int | None:
        now = self.clock()
        self.count += 1
        if self._next is not None and now < self._next and reason == self._reason:
            self._quiet += 1
            return None
        quiet, self._quiet, self._reason = self._quiet, 0, reason
        self._next = now + self._interval
        self._interval = min(self._interval * 2, self.max_s)
        return quiet


def _exception_text(exc: BaseException | None) -> str:
    if exc is None:
        return "unknown error"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text


@dataclass
class MqttStats:
    """emitted: events given to emit; published: handed to the client; acked: acknowledged by the broker
    (QoS 0: written to the socket); refused: the broker answered with a failure reason code (MQTT 5 only);
    dropped: not published, the buffer was full; failed: the client refused them; pending: handed over, not
    yet acknowledged; max_pending: the largest ``pending`` seen; connects / disconnects: connections made /
    lost; connect_failures: connection attempts that failed; last_error: the reason of the latest failure."""

    emitted: int = 0
    published: int = 0
    acked: int = 0
    dropped: int = 0
    failed: int = 0
    pending: int = 0
    max_pending: int = 0
    connects: int = 0
    disconnects: int = 0
    refused: int = 0
    connect_failures: int = 0
    last_error: str | None = None


class MqttEventSink:
    """``emit(kind, global_id, cam_id, t, **payload)`` like :class:`~pipeline.sinks.events.EventSink`, to MQTT.

    Connecting happens in paho's network thread (``connect_async`` + ``loop_start``): a broker that is down
    at start only delays delivery. ``client_id`` default: :func:`default_client_id`.
    """

    def __init__(self, settings: MqttSettings) -> None:
        import paho.mqtt.client as mqtt

        self.settings = s = settings
        self.events_topic = f"{s.topic_prefix}/events"
        self.available_topic = f"{s.topic_prefix}/available"
        self.where = f"{s.host}:{s.port}"
        password = s.resolved_password()  # ConfigError (one line) when password_env is unset
        self._stats = MqttStats()
        self._lock = threading.Lock()
        self._pending: set[int] = set()  # message ids handed to paho, not yet acknowledged
        self._early: dict[int, bool] = {}  # acknowledged before publish() returned their id -> refused
        self._internal: set[int] = set()  # ids of the "available" and state messages (not events)
        self._connected = threading.Event()
        self._warned_full = False
        self._closed = False
        self.count = 0
        self._presence = Presence(s.state_max_identities) if s.camera_counts or s.identity_state else None
        self._state: dict[str, str] = {}  # state topic -> newest payload not yet handed to a connected client
        # (pipeline thread only)
        self._connect_log = LogThrottle()  # network thread only
        self._connack_refused = False  # the last CONNACK refused: its disconnect is the same failed attempt
        self._refuse_log = LogThrottle()
        if s.client_id is not None and len(s.client_id) > PORTABLE_CLIENT_ID_CHARS:
            log.warning("mqtt %s: outputs.mqtt.client_id is %d characters; an MQTT 3.1.1 broker need only accept"
                        " %d (mosquitto accepts more; a stricter broker refuses the connection)", self.where,
                        len(s.client_id), PORTABLE_CLIENT_ID_CHARS)
        # MQTT 5 has no clean_session (paho refuses it there: its clean start is a connect() argument)
        version = {"protocol": mqtt.MQTTv5} if s.protocol == "5" else {"protocol": mqtt.MQTTv311, "clean_session": True}
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=s.client_id or default_client_id(), **version)
        if s.username is not None or password is not None:
            client.username_pw_set(s.username, password)
        if s.tls is not None:
            client.tls_set(ca_certs=s.tls.ca_certs, certfile=s.tls.certfile, keyfile=s.tls.keyfile)
            client.tls_insecure_set(s.tls.insecure)
        client.will_set(self.available_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=s.reconnect_min_s, max_delay=s.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        client.connect_async(s.host, s.port, keepalive=s.keepalive_s)
        client.loop_start()
        log.info("mqtt: publishing events to %s on %s (QoS %d, MQTT %s)", self.events_topic, self.where, s.qos,
                 s.protocol)

    # --------------------------------------------------------------- paho callbacks (network thread)
    def _connect_failed(self, reason: str) -> None:
        """A connection attempt failed: count it, and warn now or when :class:`LogThrottle` says so."""
        with self._lock:
            self._stats.connect_failures += 1
            self._stats.last_error = reason
            connected_before = self._stats.connects > 0
        quiet = self._connect_log.ready(reason)
        if quiet is None or self._closed:
            return
        attempts = self._connect_log.count
        log.warning("mqtt %s: %s: %s (%s; retrying every %g-%g s, events are kept for it up to buffer_size %d)",
                    self.where, "cannot reconnect" if connected_before else "cannot connect", reason,
                    "first attempt" if attempts == 1 else f"{attempts} attempts failed"
                    + (f", {quiet} not logged" if quiet else ""),
                    self.settings.reconnect_min_s, self.settings.reconnect_max_s, self.settings.buffer_size)

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its "except OSError" around the connection attempt: the exception is current
        self._connect_failed(_exception_text(sys.exc_info()[1]))

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connack_refused = True
            self._connect_failed(f"connection refused by the broker: {reason_code}")
            return
        failures = self._connect_log.count
        self._connect_log.reset()
        with self._lock:
            self._stats.connects += 1
            n = self._stats.connects
        self._connected.set()
        if failures:
            log.warning("mqtt %s: connected after %d failed attempts", self.where, failures)
        info = client.publish(self.available_topic, "online", qos=1, retain=True)
        with self._lock:  # the PUBACK is read by this same thread, after this callback returns
            self._internal.add(info.mid)
        log.log(logging.INFO if n == 1 else logging.WARNING, "mqtt %s: %s", self.where,
                "connected" if n == 1 else f"reconnected ({self.pending} events to re-send or send)")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self._connected.is_set():
            if self._connack_refused:  # the refusal _on_connect counted and logged
                self._connack_refused = False
            elif not self._closed:  # closed before the broker answered (a protocol error, a refused will topic)
                self._connect_failed(f"the broker closed the connection before accepting it ({reason_code})")
            return
        self._connected.clear()
        if not self._closed:
            with self._lock:
                self._stats.disconnects += 1
            log.warning("mqtt %s: connection lost (%s); buffering up to %d events, reconnecting", self.where,
                        reason_code, self.settings.buffer_size)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # paho holds its outgoing-message lock here: take ours only briefly, never publish under ours.
        # MQTT 5: a failure reason code (0x87 Not authorized, 0x90 Topic name invalid, ...) is a refusal;
        # MQTT 3.1.1 has none (paho passes Success)
        refused = bool(getattr(reason_code, "is_failure", False))
        event = False
        with self._lock:
            if mid in self._internal:
                self._internal.discard(mid)
            elif mid in self._pending:
                self._pending.discard(mid)
                event = True
                if refused:
                    self._stats.refused += 1
                else:
                    self._stats.acked += 1
            else:
                self._early[mid] = refused
            total = self._stats.refused
        if refused:
            self._log_refused(str(reason_code), "an event" if event else "a message", total)

    def _log_refused(self, reason: str, what: str, total: int) -> None:
        quiet = self._refuse_log.ready(reason)
        if quiet is not None:
            log.warning("mqtt %s: the broker refused %s under %s/: %s (%d events refused so far; check its ACL"
                        " for this client and topic)", self.where, what, self.settings.topic_prefix, reason, total)

    # --------------------------------------------------------------- the sink
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def pending(self) -> int:
        """Events handed to the client and not yet acknowledged by the broker."""
        with self._lock:
            return len(self._pending)

    def emit(self, kind: str, global_id: int, cam_id: str, t: float, **payload: Any) -> dict[str, Any]:
        """Publish one event without waiting for the broker; returns the event dict (as in events.jsonl)."""
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; valid: {', '.join(EVENT_KINDS)}")
        event = {"kind": kind, "global_id": int(global_id), "cam_id": cam_id, "t": round(float(t), 3), **payload}
        self.publish(event)
        return event

    def publish(self, event: dict[str, Any]) -> bool:
        """Hand one event (an events.jsonl object) to the client; False when it was dropped (buffer full)."""
        import paho.mqtt.client as mqtt

        s = self.settings
        with self._lock:
            self._stats.emitted += 1
            self.count += 1
            if len(self._pending) >= s.buffer_size:
                self._stats.dropped += 1
                dropped, warn = self._stats.dropped, not self._warned_full
                self._warned_full = True
            else:
                dropped = 0
        self._update_state(event)  # state topics follow every event, also one dropped from the events topic
        if dropped:
            if warn or dropped % 1000 == 0:
                log.warning("mqtt %s: buffer full (%d events unacknowledged): %d events dropped from MQTT so far "
                            "(they are in the store and events.jsonl)", self.where, s.buffer_size, dropped)
            return False
        body = json.dumps(mqtt_payload(event, s.base_url), separators=(",", ":"))
        info = self._client.publish(self.events_topic, body, qos=s.qos, retain=False)  # never blocks
        with self._lock:
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN) or (s.qos == 0 and
                                                                               info.rc == mqtt.MQTT_ERR_NO_CONN):
                self._stats.failed += 1
                return False
            self._stats.published += 1
            if info.mid in self._early:
                if self._early.pop(info.mid):
                    self._stats.refused += 1
                else:
                    self._stats.acked += 1
            else:
                self._pending.add(info.mid)
            n = len(self._pending)
            self._stats.max_pending = max(self._stats.max_pending, n)
            if n < s.buffer_size // 2:
                self._warned_full = False
        return True

    def _update_state(self, event: dict[str, Any]) -> None:
        """Apply the event to the presence state and send (or keep, while disconnected) the new state."""
        if self._presence is None:
            return
        change: PresenceChange = self._presence.apply(event)
        s, prefix = self.settings, self.settings.topic_prefix
        if s.camera_counts:
            for cam, n in change.counts.items():
                self._state[f"{prefix}/{cam}/person"] = str(n)
        if s.identity_state:
            for gid, state in change.identities.items():
                self._state[f"{prefix}/identities/{gid}"] = "" if state is None else json.dumps(
                    {**state.as_json(), "thumbnail_url": thumbnail_url(s.base_url, gid)}, separators=(",", ":"))
        self._send_state()

    def _send_state(self) -> None:
        """Hand the kept state messages to the client if it is connected (retained; an empty payload clears).
        Called from the pipeline's thread only (emit, close): one sender, so no older value overtakes a newer."""
        if not self._state or not self.connected:
            return
        todo, self._state = self._state, {}
        for topic, body in todo.items():
            info = self._client.publish(topic, body, qos=self.settings.qos, retain=True)
            with self._lock:  # not an event: kept out of the event counters
                if info.mid in self._early:
                    self._early.pop(info.mid)
                else:
                    self._internal.add(info.mid)

    def health(self) -> OutputHealth:
        """The sink as the health log line and the metrics show it (:class:`pipeline.health.OutputHealth`)."""
        st = self.stats()
        counters = {k: getattr(st, k) for k in ("published", "acked", "pending", "dropped", "failed", "refused",
                                                "connect_failures")}
        return OutputHealth("mqtt", self.connected, counters, st.last_error)

    def stats(self) -> MqttStats:
        with self._lock:
            self._stats.pending = len(self._pending)
            return MqttStats(**asdict(self._stats))

    def flush(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until every handed-over message is acknowledged; True when none is left."""
        deadline = time.monotonic() + timeout
        while (self.pending or self._unacked_internal()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.pending == 0

    def _unacked_internal(self) -> int:
        """State and availability messages handed to the client and not yet acknowledged."""
        with self._lock:
            return len(self._internal)

    def close(self, timeout: float | None = None) -> MqttStats:
        """Flush (``flush_timeout_s`` by default), say "offline", disconnect; logs what was not delivered."""
        if self._closed:
            return self.stats()
        self._send_state()
        self.flush(self.settings.flush_timeout_s if timeout is None else timeout)
        self._closed = True
        if self.connected:
            self._client.publish(self.available_topic, "offline", qos=1, retain=True).wait_for_publish(1.0)
        self._client.disconnect()
        self._client.loop_stop()
        st = self.stats()
        lost = st.pending + st.dropped + st.failed + st.refused
        never = "" if st.connects else f"; never connected ({st.connect_failures} attempts, last: {st.last_error})"
        log.log(logging.WARNING if lost or not st.connects else logging.INFO,
                "mqtt %s: %d events, %d acknowledged, %d unacknowledged at close, %d dropped (buffer full), "
                "%d refused by the client, %d refused by the broker; %d reconnects%s", self.where, st.emitted,
                st.acked, st.pending, st.dropped, st.failed, st.refused, max(0, st.connects - 1), never)
        return st
