"""Camera credentials are never persisted, and run outputs are private (issue 11, item 2).

A real live run (``reid-pipeline run``, mode live, the camera lossless, ``--max-frames``) against the loopback RTSP server
with ``--user/--password``, the camera URL carrying the password in its user-info and a token and
the password again in its query string: no output file, no byte of the store (main file, -wal,
-shm), nothing printed or logged holds the user, the password or the token; the store's
``runs.config_json`` holds the redacted URL. Every folder the run creates is 0700, every file 0600.
"""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.sources.redact import redact_data, redact_text, redact_uri

USER, PASSWORD, TOKEN = "alice", "Wonder1and", "Tok3nS3cret"


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("rtsp://u:p@h/s?Password=x&TOKEN=y&fps=5", "rtsp://***@h/s?Password=***&TOKEN=***&fps=5"),
        ("https://h/x?X-Amz-Signature=ab&X-Amz-Credential=cd&X-Amz-Security-Token=ef&n=1",
         "https://h/x?X-Amz-Signature=***&X-Amz-Credential=***&X-Amz-Security-Token=***&n=1"),
        ("http://h/v?client_secret=s&session_id=t&api-key=k&passphrase=q",
         "http://h/v?client_secret=***&session_id=***&api-key=***&passphrase=***"),
        ("https://h/cb#access_token=abc&state=1", "https://h/cb#access_token=***&state=1"),
        ("rtsp://user@h/s", "rtsp://***@h/s"),
        # s43 probe F4: a raw '#' or '?' in the password does not end the user-info (the last '@' a host follows)
        ("rtsp://admin:p@ss#PARTLEAK@10.0.0.6/s", "rtsp://***@10.0.0.6/s"),
        ("rtsp://admin:a?b#c/d@e@10.0.0.6:554/s?x=1", "rtsp://***@10.0.0.6:554/s?x=1"),
        ("rtsp://u:p@[fe80::1%25eth0]:554/s", "rtsp://***@[fe80::1%25eth0]:554/s"),
        ("rtsp://u:p@h/s?mail=a@b.example&x=1", "rtsp://***@h/s?mail=a@b.example&x=1"),  # '@' in the query kept
        # Foscam CGI, and other camera parameter names
        ("http://cam7/cgi?loginuse=admin&loginpas=FOSCAMLEAK", "http://cam7/cgi?loginuse=***&loginpas=***"),
        ("http://c/snap.cgi?usr=admin&pwd=PWLEAK&pw=X&psw=Y&passwd=Z&pass=W&res=1",
         "http://c/snap.cgi?usr=***&pwd=***&pw=***&psw=***&passwd=***&pass=***&res=1"),
        ("http://h/v?password=a#b;c&n=1", "http://h/v?password=***&n=1"),  # a raw '#' in a query value
        # credentials in the path: XMEye / cheap NVRs, with '_' or '&' between the parameters
        ("rtsp://10.0.0.8:554/user=admin_password=XMEYELEAK_channel=1_stream=0.sdp",
         "rtsp://10.0.0.8:554/user=***_password=***_channel=1_stream=0.sdp"),
        ("rtsp://10.0.0.8:554/user=admin&password=x&channel=1&stream=0.sdp?real_stream",
         "rtsp://10.0.0.8:554/user=***&password=***&channel=1&stream=0.sdp?real_stream"),
        ("rtsp://h/live/password=abc/x", "rtsp://h/live/password=***/x"),
    ],
)
def test_redact_more_secret_keys(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected
    assert redact_text(f"see {uri} now") == f"see {expected} now"


@pytest.mark.parametrize(
    "uri, expected",
    [
        # RTMP-family stream keys (the last path segment) are secrets: whoever has one can publish as the owner
        ("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-ijkl", "rtmp://a.rtmp.youtube.com/live2/***"),
        ("rtmps://live.example:443/app/KEY123?x=1", "rtmps://live.example:443/app/***?x=1"),
        ("rtmp://u:p@h/app/key", "rtmp://***@h/app/***"),
        ("rtmp://host/app", "rtmp://host/app"),  # no key in it
        ("rtsp://h/app/stream1", "rtsp://h/app/stream1"),  # not RTMP: the path is not a key
        # a camera address written without its scheme keeps the user-info rule
        ("admin:Secr3t@10.0.0.5:554/stream1", "***@10.0.0.5:554/stream1"),
        ("admin:p@ss@10.0.0.5/s", "***@10.0.0.5/s"),
        ("admin:pw@", "***@"),
        ("user:pw@[fe80::1]:554/x", "***@[fe80::1]:554/x"),
        # local paths, webcams and names with '@' but no 'user:' stay
        ("/data/videos/cam1.mp4", "/data/videos/cam1.mp4"), ("0", "0"), ("video@2x.mp4", "video@2x.mp4"),
        ("C:\\videos\\a.mp4", "C:\\videos\\a.mp4"),
    ],
)
def test_redact_stream_keys_and_scheme_less_userinfo(uri: str, expected: str) -> None:
    assert redact_uri(uri) == expected
    assert redact_text(f"cannot open {uri}: no such file") == f"cannot open {expected}: no such file"
    assert redact_data({"source": uri}) == {"source": expected}
    assert redact_text(f"source='{uri}'") == f"source='{expected}'"


def test_redact_text_keeps_the_brackets_and_quotes_around_a_uri() -> None:
    """s44 probe_live 8: ``camera good (rtsp://***@h/cam0?token=*** connected`` lost its ')'."""
    assert (redact_text("camera good (rtsp://u:p@h:554/cam0?token=TOK) connected")
            == "camera good (rtsp://***@h:554/cam0?token=***) connected")
    assert redact_text("source='rtsp://h/s?pwd=x' bad") == "source='rtsp://h/s?pwd=***' bad"
    assert redact_text('[rtsp://h/s?key=k]') == "[rtsp://h/s?key=***]"
    # a bracket the URI opened itself is part of it
    assert redact_text("rtsp://u:p@[fe80::1]:554/s ok") == "rtsp://***@[fe80::1]:554/s ok"


def test_redact_text_keeps_mail_addresses_and_redacted_uris() -> None:
    for text in ("mail bob@example.com", "rtsp://***@h/s", "at 12:30 see rtsp://***@h/s"):
        assert redact_text(text) == text


def test_redact_data_walks_json_like_values() -> None:
    data = {"cameras": [{"id": "a", "source": "rtsp://u:pw@h/s?token=t"}, {"id": "b", "source": "/x/v.mp4"}],
            "n": 3, "flag": None, "nested": {"list": ["http://h/?key=k", 1.5]}}
    assert redact_data(data) == {
        "cameras": [{"id": "a", "source": "rtsp://***@h/s?token=***"}, {"id": "b", "source": "/x/v.mp4"}],
        "n": 3, "flag": None, "nested": {"list": ["http://h/?key=***", 1.5]}}


@pytest.mark.parametrize("secret", ["PARTLEAK", "FOSCAMLEAK", "XMEYELEAK"])
def test_no_probe_password_survives_in_text_or_data(secret: str) -> None:
    """The probe's three leaking forms, inside log text (quoted, as a repr or in JSON) and in a stored config."""
    uri = {"PARTLEAK": "rtsp://admin:p@ss#PARTLEAK@10.0.0.6/s",
           "FOSCAMLEAK": "http://cam7/cgi?loginuse=admin&loginpas=FOSCAMLEAK",
           "XMEYELEAK": "rtsp://10.0.0.8:554/user=admin_password=XMEYELEAK_channel=1_stream=0.sdp"}[secret]
    for text in (f"cannot open '{uri}': timeout", f"[{uri!r}]", json.dumps({"source": uri, "id": "a"}),
                 json.dumps({"source": uri}, separators=(",", ":"))):
        assert secret not in redact_text(text), text
        assert "admin" not in redact_text(text), text
    stored = json.dumps(redact_data({"cameras": [{"id": "a", "source": uri}]}))
    assert secret not in stored and "admin" not in stored


def test_redact_data_masks_secret_named_values() -> None:
    """ui.token and any other secret-named value is masked as pydantic masks a SecretStr; *_env names stay."""
    data = {"ui": {"enabled": True, "token": "RUNUITOKEN123"}, "api_key": "k", "client_secret": "s",
            "outputs": {"mqtt": {"password": "**********", "password_env": "MQTT_PW", "username": "u",
                                 "tls": {"keyfile": "/etc/k.pem"}}}, "run_key": "r1", "tokens": 3, "token": None}
    assert redact_data(data) == {
        "ui": {"enabled": True, "token": "**********"}, "api_key": "**********", "client_secret": "**********",
        "outputs": {"mqtt": {"password": "**********", "password_env": "MQTT_PW", "username": "u",
                             "tls": {"keyfile": "/etc/k.pem"}}}, "run_key": "r1", "tokens": 3, "token": None}


def _all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_live_run_persists_no_credentials_and_outputs_are_private(make_rtsp_server, shared, tmp_path):
    srv = make_rtsp_server("--user", USER, "--password", PASSWORD)
    url = srv.url("cam0", f"{USER}:{PASSWORD}@") + f"?token={TOKEN}&password={PASSWORD}"
    store_dir, out = tmp_path / "store", tmp_path / "run" / "outputs"
    cfg = {
        "mode": "live",
        "cameras": [{"id": "cam0", "source": url, "mode": "lossless"}],  # every frame: events and tracklets
        "detector": {"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
        "tracklets": {"min_length": 2, "partial_every_s": 0.5},
        "store": {"path": str(store_dir / "ids.sqlite")},
        "outputs": {"dir": str(out), "video": True},
        "health": {"log_every_s": 0.5},
    }
    (tmp_path / "cams.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    res = subprocess.run(
        [sys.executable, "-m", "pipeline", "run", str(tmp_path / "cams.yaml"), "--max-frames", "12",
         "--no-progress"], capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stderr[-3000:]

    files = _all_files(out) + _all_files(store_dir)
    names = {p.relative_to(tmp_path).as_posix() for p in files}
    assert {"run/outputs/events.jsonl", "run/outputs/stage_times.json", "run/outputs/mot/cam0.txt",
            "run/outputs/video/cam0.mp4", "store/ids.sqlite"} <= names, names
    for secret in (USER, PASSWORD, TOKEN):
        for p in files:
            assert secret.encode() not in p.read_bytes(), (secret, p)
        assert secret not in res.stdout and secret not in res.stderr, secret
    assert f"rtsp://***@127.0.0.1:{srv.port}/cam0" in res.stderr  # it was logged, redacted

    with sqlite3.connect(store_dir / "ids.sqlite") as c:
        (config_json,) = c.execute("SELECT config_json FROM runs").fetchone()
    source = json.loads(config_json)["cameras"][0]["source"]
    assert source == f"rtsp://***@127.0.0.1:{srv.port}/cam0?token=***&password=***"

    assert json.loads((out / "stage_times.json").read_text())["timing"]["frames_per_cam"] == {"cam0": 12}
    assert (out / "events.jsonl").read_text().count("\n") >= 1  # the scan above covered real events
    for p in [out, *(d for d in out.rglob("*") if d.is_dir())]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o700, p
    for p in _all_files(out):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    # the folders above outputs/ that the run created are private too
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o700
