"""One event stream, several sinks: the runner emits each event once; events.jsonl and MQTT both get it."""

from __future__ import annotations

from typing import Any, Protocol


class EventEmitter(Protocol):
    """What the runner calls: :class:`~pipeline.sinks.events.EventSink`, :class:`~pipeline.sinks.mqtt.MqttEventSink`."""

    count: int

    def emit(self, kind: str, global_id: int, cam_id: str, t: float, **payload: Any) -> dict[str, Any]: ...

    def close(self) -> Any: ...


class EventFanout:
    """``emit`` calls every sink in order (the first one's event is returned); ``close`` closes those in
    ``owned`` (a sink that must outlive this stream, e.g. MQTT waiting for late events, is left open)."""

    def __init__(self, sinks: list[EventEmitter], owned: list[EventEmitter] | None = None) -> None:
        if not sinks:
            raise ValueError("EventFanout needs at least one sink")
        self.sinks = list(sinks)
        self.owned = list(self.sinks if owned is None else owned)

    @property
    def count(self) -> int:
        return self.sinks[0].count

    def emit(self, kind: str, global_id: int, cam_id: str, t: float, **payload: Any) -> dict[str, Any]:
        events = [s.emit(kind, global_id, cam_id, t, **payload) for s in self.sinks]
        return events[0]

    def close(self) -> None:
        errors = []
        for s in self.owned:
            try:
                s.close()
            except Exception as exc:  # noqa: BLE001 - close the others, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]
