"""The MQTT event sink against a real mosquitto broker on 127.0.0.1 (started by the test, own config, free port).

Checks: the Frigate-style payload and topics; a broker that is down buffers (bounded: the overflow is
counted and logged) and delivers when it comes up; kill -9 and restart loses nothing and re-sends
nothing the broker had acknowledged; password from an environment variable, never logged; the
``outputs.mqtt`` config; TLS; the end-of-run re-clustering's merge event; a real 2-camera PETS batch
run whose events arrive over MQTT exactly as events.jsonl has them, with the broker down when the run
starts and brought up mid-run.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.sinks.mqtt import MqttEventSink, event_id, mqtt_payload
from pipeline.sinks.mqtt_settings import MqttSettings
from pipeline.testing.mqtt_broker import EventSubscriber, MosquittoBroker, make_test_certs
from pipeline.testing.rtsp import free_port

N_FRAMES = 14
FAST = {"reconnect_min_s": 0.1, "reconnect_max_s": 0.5, "flush_timeout_s": 10.0}


def _sink(port: int, **kw) -> MqttEventSink:
    return MqttEventSink(MqttSettings(port=port, **{**FAST, **kw}))


def _persistent_session(broker: MosquittoBroker, topic: str, client_id: str = "sub") -> None:
    """Create a persistent subscriber session on the broker and save it (a clean stop writes the persistence file)."""
    sub = EventSubscriber(broker.port, topic, client_id=client_id).start()
    sub.stop()
    broker.stop()


def test_payload_topics_and_availability(make_broker):
    broker = make_broker()
    sub = EventSubscriber(broker.port, "site/reid/#", client_id="t1").start()
    sink = _sink(broker.port, topic_prefix="site/reid", base_url="http://10.0.0.7:8080/")
    try:
        sink.emit("appear", 3, "left", 1.2345, track_id=5, frame=9, new=True)
        sink.emit("handover", 3, "right", 4.0, track_id=2, frame=28, from_cam="left", transit_s=1.5, probability=0.8765)
        sink.emit("leave", 3, "right", 6.5, track_id=2, frame=45)
        with pytest.raises(ValueError, match="unknown event kind"):
            sink.emit("teleport", 3, "right", 7.0)
        stats = sink.close()
    finally:
        sink.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (len(sub.event_ids()) < 3 or "offline" not in sub.payloads()):
        time.sleep(0.05)
    events = sub.payloads("site/reid/events")
    assert len(events) == 3
    assert events[1] == {
        "type": "handover", "id": events[1]["id"], "label": "person", "global_id": 3, "camera": "right", "time": 4.0,
        "confidence": 0.8765, "thumbnail_url": "http://10.0.0.7:8080/api/identities/3/thumbnail.jpg",
        "details": {"track_id": 2, "frame": 28, "from_cam": "left", "transit_s": 1.5, "probability": 0.8765},
    }
    assert events[0]["time"] == 1.234 and events[0]["confidence"] is None and events[0]["details"]["new"] is True
    assert [e["type"] for e in events] == ["appear", "handover", "leave"]
    assert len({e["id"] for e in events}) == 3  # distinct events, distinct ids
    # the id is stable: the same event (as events.jsonl has it) gives the same id
    assert events[2]["id"] == event_id({"kind": "leave", "global_id": 3, "cam_id": "right", "t": 6.5, "track_id": 2})
    avail = [p for t, p, *_ in sub.messages if t == "site/reid/available"]
    assert avail[0] == "online" and avail[-1] == "offline"
    assert (stats.emitted, stats.acked, stats.pending, stats.dropped) == (3, 3, 0, 0)
    sub.stop()


def test_broker_down_bounded_buffer_then_delivered(make_broker, caplog):
    broker = make_broker()
    _persistent_session(broker, "reid/events", "late-sub")  # the broker is down from here on
    sink = _sink(broker.port, buffer_size=3)
    caplog.set_level(logging.WARNING, logger="pipeline.sinks.mqtt")
    try:
        sent = [sink.emit("appear", g, "cam", float(g), track_id=g) for g in range(1, 6)]  # never blocks
        st = sink.stats()
        assert (st.emitted, st.published, st.dropped, st.pending, st.max_pending) == (5, 3, 2, 3, 3)
        assert sum("buffer full" in r.getMessage() for r in caplog.records) == 1  # said once, counted
        broker.start()  # persistence restores the subscriber's session: it gets what was queued for it
        sub = EventSubscriber(broker.port, "reid/events", client_id="late-sub").start()
        want = [event_id(e) for e in sent[:3]]
        assert sub.wait_for_ids(want, 15)
        st = sink.close()
    finally:
        sink.close()
    assert (st.acked, st.pending, st.dropped) == (3, 0, 2)
    assert sorted(sub.event_ids()) == sorted(want)  # the dropped two never went out
    sub.stop()


def test_kill_and_restart_loses_nothing_and_resends_nothing_acked(make_broker):
    broker = make_broker()
    sub = EventSubscriber(broker.port, "reid/events", client_id="sub-kill").start()
    sink = _sink(broker.port)
    try:
        first = [sink.emit("appear", g, "cam", float(g), track_id=g) for g in range(1, 6)]
        assert sub.wait_for_ids([event_id(e) for e in first], 10)
        assert sink.flush(5)  # all five acknowledged by the broker
        # wait for a broker autosave (every 1 s; later on a loaded machine) made after that: the saved state holds
        # the subscriber's session and nothing in flight (a fixed sleep lost the session under CI load)
        saved, t0 = broker.folder / "mosquitto.db", time.time() + 0.05
        deadline = time.monotonic() + 15
        while not (saved.exists() and saved.stat().st_mtime > t0) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert saved.exists() and saved.stat().st_mtime > t0, "the broker never saved its state"
        broker.kill()  # SIGKILL: a crash
        second = [sink.emit("leave", g, "cam", float(g) + 0.5, track_id=g) for g in range(1, 6)]
        assert sink.stats().pending == 5
        broker.start()
        want = [event_id(e) for e in first + second]
        assert sub.wait_for_ids(want, 20)
        st = sink.close()
    finally:
        sink.close()
    assert (st.emitted, st.acked, st.pending, st.dropped, st.failed) == (10, 10, 0, 0, 0)
    assert st.connects >= 2 and st.disconnects >= 1
    ids = sub.event_ids()
    assert sorted(ids) == sorted(want)  # every event once: nothing lost, nothing acknowledged sent again
    sub.stop()


def test_password_from_env_never_logged(make_broker, monkeypatch, caplog):
    secret = "s3cret-Pw!9"
    broker = make_broker(users={"cams": secret})
    monkeypatch.setenv("REID_TEST_MQTT_PASSWORD", secret)
    caplog.set_level(logging.DEBUG)
    sub = EventSubscriber(broker.port, "reid/events", client_id="auth-sub", username="cams", password=secret).start()
    settings = MqttSettings(port=broker.port, username="cams", password_env="REID_TEST_MQTT_PASSWORD", **FAST)
    sink = MqttEventSink(settings)
    try:
        ev = sink.emit("appear", 1, "cam", 0.5, track_id=1)
        assert sub.wait_for_ids([event_id(ev)], 10)
    finally:
        sink.close()
    wrong = MqttEventSink(MqttSettings(port=broker.port, username="cams", password="not-it", **FAST))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("refused" in r.getMessage() for r in caplog.records):
            time.sleep(0.05)
        assert not wrong.connected
    finally:
        wrong.close(timeout=0)
    text = caplog.text
    assert "refused" in text and secret not in text and "not-it" not in text
    inline = MqttSettings(password="not-it")
    assert "not-it" not in json.dumps(inline.model_dump(mode="json")) and "not-it" not in repr(inline)
    monkeypatch.delenv("REID_TEST_MQTT_PASSWORD")
    with pytest.raises(ConfigError, match="REID_TEST_MQTT_PASSWORD is not set"):
        MqttEventSink(settings)
    sub.stop()


def test_tls(make_broker, tmp_path):
    certs = make_test_certs(tmp_path / "certs")
    broker = MosquittoBroker(tmp_path / "tls-broker", free_port(), tls=certs)
    broker.start()
    try:
        sub = EventSubscriber(broker.port, "reid/events", client_id="tls-sub", tls_ca=certs["ca"]).start()
        sink = _sink(broker.port, tls={"ca_certs": str(certs["ca"])})
        try:
            ev = sink.emit("appear", 1, "cam", 0.5, track_id=1)
            assert sub.wait_for_ids([event_id(ev)], 10)
        finally:
            sink.close()
        sub.stop()
        plain = _sink(broker.port)  # no TLS against a TLS-only listener: never connects, nothing delivered
        try:
            plain.emit("appear", 2, "cam", 0.5, track_id=2)
            time.sleep(1.0)
            assert not plain.connected and plain.stats().acked == 0
        finally:
            plain.close(timeout=0)
    finally:
        broker.stop()


def test_recluster_merge_event_reaches_mqtt(make_broker, tmp_path):
    """Two tracklets 1 degree apart (cosine distance 1 - cos 1deg = 0.00015 < 0.03) under ids 1 (camera a,
    0-10 s) and 2 (camera b, 20-30 s): the end-of-run re-clustering merges 2 into 1 at (b, 20 s)."""
    import math

    import numpy as np

    from pipeline.camconfig import CamsConfig
    from pipeline.core.types import Tracklet
    from pipeline.matching.recluster import recluster_after_run
    from pipeline.store import IdentityStore

    def vec(deg: float) -> np.ndarray:
        return np.array([math.cos(math.radians(deg)), math.sin(math.radians(deg))], np.float32)

    path = tmp_path / "s.sqlite"
    with IdentityStore(path) as store:
        run = store.begin_run("hand")
        for k, (cam, start, deg, gid) in enumerate((("a", 0, 0.0, 1), ("b", 20, 1.0, 2))):
            frames = np.arange(start + 1, start + 12, dtype=np.int64)
            tr = Tracklet(cam, k + 1, frames, (frames - 1).astype(np.float64),
                          np.tile([10.0, 10.0, 20.0, 50.0], (len(frames), 1)), np.zeros((0, 2), np.float32))
            tid = store.add_tracklet(run, tr, vec(deg), "v")
            store.new_identity(vec(deg), tr.start_time, cam, gid, "v")
            store.update_identity(gid, vec(deg), tr.end_time, cam)
            store.assign(tid, gid, None)
        store.end_run(run, "complete")
    cfg = CamsConfig.model_validate({"cameras": [{"id": "a", "source": "a.mp4"}, {"id": "b", "source": "b.mp4"}],
                                     "matching": {"threshold": 0.03, "auto_threshold": None},
                                     "recluster": {"enabled": True}})
    broker = make_broker()
    sub = EventSubscriber(broker.port, "reid/events", client_id="rc-sub").start()
    sink = _sink(broker.port)
    try:
        with IdentityStore(path) as store:
            summary = recluster_after_run(cfg, store, run, tmp_path / "out", events=sink)
        assert summary["merges"] == 1 and summary["splits"] == 0
        want = event_id({"kind": "merge", "global_id": 1, "cam_id": "b", "t": 20.0, "ids": [1, 2]})
        assert sub.wait_for_ids([want], 10)
    finally:
        sink.close()
    (p,) = sub.payloads("reid/events")
    assert (p["type"], p["global_id"], p["camera"], p["time"]) == ("merge", 1, "b", 20.0)
    assert (p["details"]["into"], p["details"]["absorbed"], p["details"]["by"]) == (1, 2, "recluster")
    sub.stop()


def test_outputs_mqtt_config(tmp_path, pets_dir):
    from pipeline.camconfig import load_cams_config

    def load(mqtt: dict):
        p = tmp_path / "cams.yaml"
        p.write_text(yaml.safe_dump({"cameras": [{"id": "c", "source": str(pets_dir / "img1")}],
                                     "outputs": {"mqtt": mqtt}}), encoding="utf-8")
        return load_cams_config(p)

    cfg = load({"host": "broker.lan", "topic_prefix": "home/reid", "tls": {"ca_certs": "ca.pem"}})
    m = cfg.outputs.mqtt
    assert (m.host, m.port, m.qos, m.topic_prefix) == ("broker.lan", 1883, 1, "home/reid")
    assert m.tls.ca_certs == str(tmp_path / "ca.pem")  # relative to cams.yaml
    with pytest.raises(ConfigError, match=r"outputs\.mqtt\.topic_prefix"):
        load({"topic_prefix": "reid/#"})
    with pytest.raises(ConfigError, match="password or password_env, not both"):
        load({"password": "a", "password_env": "B"})
    with pytest.raises(ConfigError, match=r"outputs\.mqtt\.base_url"):
        load({"base_url": "10.0.0.7:8080"})


def test_run_with_unset_password_env_fails_in_one_line_before_the_store(tmp_path, pets_dir, monkeypatch, capsys):
    from pipeline.cli import main

    monkeypatch.delenv("REID_TEST_NO_SUCH_PW", raising=False)
    p = tmp_path / "cams.yaml"
    p.write_text(yaml.safe_dump({
        "cameras": [{"id": "c", "source": str(pets_dir / "img1")}], "store": {"path": str(tmp_path / "s.sqlite")},
        "outputs": {"dir": str(tmp_path / "out"), "mqtt": {"username": "u", "password_env": "REID_TEST_NO_SUCH_PW"}},
    }), encoding="utf-8")
    assert main(["run", str(p), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["reid-pipeline: error: outputs.mqtt.password_env: environment variable REID_TEST_NO_SUCH_PW is not set"]
    assert not (tmp_path / "s.sqlite").exists()


@pytest.fixture(scope="module")
def split(pets_dir: Path, tmp_path_factory) -> Path:
    from pipeline.virtual_cameras import build_virtual_cameras

    out = tmp_path_factory.mktemp("pets_split_mqtt")
    build_virtual_cameras(pets_dir, out, layout="two-regions", gap=0.1, frame_range=(1, N_FRAMES), progress=False)
    return out


def test_batch_run_events_arrive_as_in_events_jsonl(make_broker, split, shared, tmp_path):
    """A real 2-camera run with the broker down at start; it comes up once the first event is written."""
    from pipeline.cli import main

    broker = make_broker()
    _persistent_session(broker, "pets/events", "run-sub")
    base = "http://127.0.0.1:8080"
    out = tmp_path / "out"
    cfg = {
        "mode": "batch", "run_key": "mqtt-run",
        "cameras": [{"id": c, "source": str(split / c / "video.mp4")} for c in ("left", "right")],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "tracklets": {"min_length": 3, "partial_every_s": 0.5},
        "store": {"path": str(tmp_path / "ids.sqlite")},
        "outputs": {"dir": str(out), "mqtt": {"port": broker.port, "topic_prefix": "pets", "base_url": base, **FAST}},
        "recluster": {"enabled": True},  # its merge/split events at the end of the run go to MQTT too
    }
    path = tmp_path / "cams.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")

    def bring_up() -> None:  # the broker starts when the run has written its first event
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            f = out / "events.jsonl"
            if f.is_file() and f.read_text().strip():
                broker.start()
                return
            time.sleep(0.02)

    starter = threading.Thread(target=bring_up, daemon=True)
    starter.start()
    assert main(["run", str(path), "--no-progress"]) == 0
    starter.join(5)
    assert broker.running
    lines = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert lines and {e["kind"] for e in lines} >= {"appear", "leave"}
    summary = json.loads((out / "stage_times.json").read_text())["mqtt"]
    assert summary["emitted"] == len(lines) and summary["acked"] == len(lines) and summary["max_pending"] >= 1
    sub = EventSubscriber(broker.port, "pets/events", client_id="run-sub").start()
    try:
        assert sub.wait_for_ids([event_id(e) for e in lines], 20)
        got = {p["id"]: p for p in sub.payloads("pets/events")}
        assert len(sub.event_ids()) == len(lines) == len(got)  # each event once
        for e in lines:
            p = got[event_id(e)]
            assert p == mqtt_payload(e, base)
            assert (p["type"], p["global_id"], p["camera"], p["time"]) == (e["kind"], e["global_id"], e["cam_id"], e["t"])
            assert p["thumbnail_url"] == f"{base}/api/identities/{e['global_id']}/thumbnail.jpg"
    finally:
        sub.stop()


class _DetectorThatFails:
    """The run's real detector, which raises on its ``fail_at``-th call: a run dying mid-way."""

    def __init__(self, detector, fail_at: int) -> None:
        self.detector, self.fail_at, self.calls = detector, fail_at, 0

    def detect(self, images):
        self.calls += 1
        if self.calls >= self.fail_at:
            raise RuntimeError("detector failed (injected)")
        return self.detector.detect(images)

    def __getattr__(self, name):
        return getattr(self.detector, name)


def test_run_that_fails_mid_way_still_flushes_its_events_to_mqtt(make_broker, split, shared, tmp_path):
    """A run that dies with an exception after it has written events: every event of events.jsonl still
    reaches the broker once, the sink is flushed and closed on the failure path (the retained availability says
    "offline"), and the timeline PNGs are written."""
    from pipeline.camconfig import load_cams_config
    from pipeline.runner.components import build_components
    from pipeline.runner.loop import PipelineRunner

    broker = make_broker()
    out = tmp_path / "out"
    cfg_path = tmp_path / "cams.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "mode": "batch", "run_key": "mqtt-fail",
        "cameras": [{"id": c, "source": str(split / c / "video.mp4")} for c in ("left", "right")],
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "tracklets": {"min_length": 3, "partial_every_s": 0.5},
        "store": {"path": str(tmp_path / "ids.sqlite")},
        "outputs": {"dir": str(out), "video": False, "mqtt": {"port": broker.port, "topic_prefix": "f", **FAST}},
    }), encoding="utf-8")
    cfg = load_cams_config(cfg_path)
    sub = EventSubscriber(broker.port, "f/#", client_id="fail-sub").start()
    comp = build_components(cfg)
    try:
        comp.detector = _DetectorThatFails(comp.detector, fail_at=N_FRAMES - 2)
        with pytest.raises(RuntimeError, match="injected"):
            PipelineRunner(cfg, progress=False, components=comp).run()
        lines = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
        assert {e["kind"] for e in lines} >= {"appear", "leave"}  # the flush on failure wrote finals too
        assert sub.wait_for_ids([event_id(e) for e in lines], 20)
        assert len(sub.payloads("f/events")) == len(lines)  # each once
        deadline = time.monotonic() + 5  # the sink was closed: "offline", not left "online" by a dead run
        while time.monotonic() < deadline and "offline" not in sub.payloads("f/available"):
            time.sleep(0.05)
        assert sub.payloads("f/available")[-1] == "offline"
        assert sorted(p.name for p in out.glob("timeline_*.png")) == ["timeline_left.png", "timeline_right.png"]
    finally:
        sub.stop()
        comp.store.close()


def test_state_topics_counts_and_identities_retained_and_current_after_an_outage(make_broker):
    """Per-camera counts and per-identity state are retained with their newest value; while the broker is
    down only the newest value per topic is kept, and it goes out with the first event after the reconnect."""
    broker = make_broker()
    sink = _sink(broker.port, topic_prefix="st", identity_state=True, base_url="http://10.0.0.7:8080")
    try:
        deadline = time.monotonic() + 10
        while not sink.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        sink.emit("appear", 1, "left", 1.0, track_id=5, frame=7, new=True)
        sink.emit("appear", 2, "left", 1.5, track_id=6, frame=10, new=True)
        assert sink.flush(10)
        broker.kill()  # down: the next changes are kept, newest per topic
        deadline = time.monotonic() + 10  # once the client has seen the connection go (else it still sends)
        while sink.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not sink.connected
        sink.emit("leave", 1, "left", 3.0, track_id=5, frame=21)
        sink.emit("merge", 2, "left", 3.5, ids=[2, 1], into=2, absorbed=1, moved=[], **{"from": 1})
        assert sink._state == {"st/left/person": "1", "st/identities/1": "",
                               "st/identities/2": sink._state["st/identities/2"]}  # one message per topic
        broker.start()
        deadline = time.monotonic() + 10
        while not sink.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        sink.emit("appear", 2, "right", 4.0, track_id=1, frame=28)
        sink.close()
    finally:
        sink.close()
    late = EventSubscriber(broker.port, "st/#", client_id="late", persistent=False).start()  # retained only
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len({m[0] for m in late.messages}) < 4:
            time.sleep(0.05)
        retained = {t: p for t, p, _, r, _ in late.messages if r}
    finally:
        late.stop()
    assert retained["st/left/person"] == 1 and retained["st/right/person"] == 1
    assert retained["st/identities/2"] == {"global_id": 2, "present": True, "cameras": ["left", "right"],
                                           "last_camera": "right", "last_seen": 4.0, "absorbed_into": None,
                                           "thumbnail_url": "http://10.0.0.7:8080/api/identities/2/thumbnail.jpg"}
    assert "st/identities/1" not in retained  # absorbed by the merge and out of view: cleared
    assert retained["st/available"] == "offline"


def test_health_line_and_metrics_report_the_mqtt_sink(make_broker, caplog):
    """A live run's periodic health lines and Prometheus metrics include the MQTT sink: connected with its
    counters, then a WARNING line (with the reason) while the broker is down."""
    import logging

    from pipeline.health import HealthMonitor

    broker = make_broker()
    sink = _sink(broker.port)
    monitor = HealthMonitor([], interval_s=60)
    monitor.add_output(sink)
    try:
        deadline = time.monotonic() + 10
        while not sink.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        sink.emit("appear", 1, "cam", 1.0, track_id=1)
        assert sink.flush(5)
        with caplog.at_level(logging.INFO, logger="pipeline.health"):
            monitor.log_once()
        line = [r for r in caplog.records if "health mqtt" in r.getMessage()][-1]
        assert line.levelno == logging.INFO
        assert line.getMessage().startswith("health mqtt connected published=1 acked=1 pending=0 dropped=0")
        text = monitor.exposition()
        assert 'reid_output_connected{output="mqtt"} 1.0' in text
        assert 'reid_output_events_total{counter="acked",output="mqtt"} 1.0' in text
        broker.kill()
        deadline = time.monotonic() + 10
        while sink.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pipeline.health"):
            monitor.log_once()
        line = [r for r in caplog.records if "health mqtt" in r.getMessage()][-1]
        assert line.levelno == logging.WARNING and line.getMessage().startswith("health mqtt disconnected")
        assert 'reid_output_connected{output="mqtt"} 0.0' in monitor.exposition()
    finally:
        sink.close()
