"""The console token (s43 probe F5): never stored in plain text, taken from ``REID_UI_TOKEN`` by ``run`` as by
``serve``, and refused when weak for a console that other machines can reach.

* :func:`pipeline.camconfig.check_ui_access`: a non-loopback bind needs a token of >= 16 printable characters
  without spaces (one line naming the key, never the token); loopback accepts any.
* ``ui.token`` is masked in every JSON dump of the config (``runs.config_json``, the run key's hash), as
  ``outputs.mqtt.password`` is, and not shown by ``repr``.
* ``REID_UI_TOKEN`` wins over ``ui.token`` (serve's order) at load (the bind check) and in ``run``.
* A real batch run with the console on: neither the file's nor the environment's token reaches the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.camconfig import UI_TOKEN_ENV, check_ui_access, load_cams_config, ui_token
from pipeline.core.errors import ConfigError

LONG = "Zq3-vT9_kLm2Xw8Rb7Yp"  # 20 characters
ENV_TOKEN = "EnvTok-4f9a2c7e1b8d6035"


def _cfg(tmp_path: Path, ui: dict, pets_dir: Path, **extra) -> Path:
    p = tmp_path / "cams.yaml"
    p.write_text(yaml.safe_dump({"cameras": [{"id": "c", "source": str(pets_dir / "img1")}], "ui": ui, **extra}),
                 encoding="utf-8")
    return p


@pytest.mark.parametrize("token, problem", [
    ("x", "is 1 character long"), ("abcdef", "is 6 characters long"), ("0123456789abcde", "is 15 characters"),
    (" " * 20, "spaces or control"), ("\t" * 20, "spaces or control"), ("abcdefgh ijklmnopq", "spaces or control"),
    ("abcdefghijklmnop\n", "spaces or control"),
])
def test_weak_token_refused_off_loopback_in_one_line(token: str, problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        check_ui_access("0.0.0.0", token, "ui.host", "ui.token")
    msg = str(e.value)
    assert msg.startswith("ui.token: ") and problem in msg and "0.0.0.0" in msg and "\n" not in msg
    if token.strip():
        assert token.strip() not in msg  # the token itself is never echoed


def test_token_rules() -> None:
    check_ui_access("0.0.0.0", "a" * 16)  # 16 is enough
    check_ui_access("127.0.0.1", "x")  # loopback: any token, or none
    check_ui_access("::1", None)
    with pytest.raises(ConfigError, match="no token is set"):
        check_ui_access("0.0.0.0", None)
    with pytest.raises(ConfigError, match="no token is set"):
        check_ui_access("10.1.2.3", "")
    # serve's order: --token, then REID_UI_TOKEN, then ui.token; an empty value is unset
    assert ui_token("cli", None, {UI_TOKEN_ENV: "env"}) == ("cli", "--token")
    assert ui_token(None, None, {UI_TOKEN_ENV: "env"}) == ("env", UI_TOKEN_ENV)
    assert ui_token(None, None, {UI_TOKEN_ENV: ""}) == (None, "ui.token")


def test_config_file_token_weak_refused_naming_the_key(tmp_path, pets_dir, monkeypatch) -> None:
    monkeypatch.delenv(UI_TOKEN_ENV, raising=False)
    p = _cfg(tmp_path, {"enabled": True, "host": "0.0.0.0", "token": "x"}, pets_dir)
    with pytest.raises(ConfigError, match=r"cams.yaml: ui: .*token: the console token is 1 character long") as e:
        load_cams_config(p)
    assert "\n" not in str(e.value)
    _cfg(tmp_path, {"enabled": False, "host": "0.0.0.0", "token": "x"}, pets_dir)
    assert load_cams_config(p).ui.token == "x"  # no console: nothing to check


def test_env_token_used_at_load_and_weak_env_token_named(tmp_path, pets_dir, monkeypatch) -> None:
    p = _cfg(tmp_path, {"enabled": True, "host": "0.0.0.0"}, pets_dir)
    monkeypatch.setenv(UI_TOKEN_ENV, "abcdef")
    with pytest.raises(ConfigError, match=rf"ui: .*{UI_TOKEN_ENV}: the console token is 6 characters long"):
        load_cams_config(p)
    monkeypatch.setenv(UI_TOKEN_ENV, ENV_TOKEN)
    cfg = load_cams_config(p)  # the probe's `REID_UI_TOKEN=... run ui_any.yaml` was refused here
    assert cfg.ui.token is None and cfg.with_ui_token().ui.token == ENV_TOKEN
    # the environment wins over the file, as for serve
    _cfg(tmp_path, {"enabled": True, "host": "127.0.0.1", "token": LONG}, pets_dir)
    assert load_cams_config(p).with_ui_token().ui.token == ENV_TOKEN
    assert load_cams_config(p).with_ui_token({}).ui.token == LONG


def test_token_masked_in_every_dump(tmp_path, pets_dir, monkeypatch) -> None:
    from pipeline.sources.redact import redact_data

    monkeypatch.delenv(UI_TOKEN_ENV, raising=False)
    cfg = load_cams_config(_cfg(tmp_path, {"enabled": True, "token": LONG}, pets_dir))
    assert cfg.ui.token == LONG  # the console still gets it
    stored = json.dumps(redact_data(cfg.model_dump(mode="json")))  # what the runner writes to runs.config_json
    assert LONG not in stored and json.loads(stored)["ui"]["token"] == "**********"
    assert LONG not in cfg.model_dump_json() and LONG not in repr(cfg) and LONG not in repr(cfg.ui)
    # the run key does not depend on the token (it is not a way to test guesses)
    other = cfg.model_copy(update={"ui": cfg.ui.model_copy(update={"token": LONG[::-1]})})
    assert other.fingerprint() == cfg.fingerprint()


def test_run_command_serves_with_the_env_token(tmp_path, pets_dir, monkeypatch) -> None:
    """``run`` hands the runner the REID_UI_TOKEN token (the probe: it ignored it and refused to start)."""
    import pipeline.runner.loop as loop
    from pipeline.cli import main

    seen = {}

    class FakeRunner:
        def __init__(self, cfg, **kw):
            seen["token"] = cfg.ui.token
            self.summary_table = "table"

        def run(self):
            return {"run_key": "k", "out_dir": "o", "store": "s", "interrupted": False, "tracklets_stored": 0,
                    "global_ids": 0, "handovers": 0}

    monkeypatch.setattr(loop, "PipelineRunner", FakeRunner)
    monkeypatch.setenv(UI_TOKEN_ENV, ENV_TOKEN)
    p = _cfg(tmp_path, {"enabled": True, "host": "0.0.0.0"}, pets_dir, store={"path": str(tmp_path / "s.sqlite")})
    assert main(["run", str(p), "--no-progress", "--max-frames", "1"]) == 0
    assert seen["token"] == ENV_TOKEN


def test_real_run_stores_no_ui_token(tmp_path, shared, pets_dir) -> None:
    """A batch run (2 frames) with the console on, a token in the file and another in REID_UI_TOKEN: no byte of
    the store or the outputs holds either, and runs.config_json shows the token masked."""
    store, out = tmp_path / "ids.sqlite", tmp_path / "out"
    file_token = "FileTok-9e1d2b3c4a5f6071"
    p = _cfg(tmp_path, {"enabled": True, "host": "127.0.0.1", "port": 0, "token": file_token}, pets_dir,
             mode="batch", detector={"kind": "onnx", "weights": str(shared / "weights" / "yolov5n.onnx")},
             store={"path": str(store)}, outputs={"dir": str(out), "video": False})
    env = {**os.environ, UI_TOKEN_ENV: ENV_TOKEN}
    res = subprocess.run([sys.executable, "-m", "pipeline", "run", str(p), "--max-frames", "2", "--no-progress"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    files = [f for f in [*tmp_path.rglob("*")] if f.is_file() and f.name != "cams.yaml"]
    assert any(f.name == "ids.sqlite" for f in files)
    for f in files:
        data = f.read_bytes()
        assert file_token.encode() not in data and ENV_TOKEN.encode() not in data, f
    assert file_token not in res.stdout + res.stderr and ENV_TOKEN not in res.stdout + res.stderr
    import sqlite3

    with sqlite3.connect(store) as c:
        (config_json,) = c.execute("SELECT config_json FROM runs").fetchone()
    assert json.loads(config_json)["ui"]["token"] == "**********"


def test_allowed_hosts_order_and_one_line_refusals(tmp_path, pets_dir, monkeypatch) -> None:
    """``ui.allowed_hosts`` (the config key the eighth session lacked): serve's ``--allow-host``, then
    ``REID_UI_ALLOWED_HOSTS``, then the key; a value that is not a host name is refused naming its source."""
    from pipeline.camconfig import UI_ALLOWED_HOSTS_ENV, ui_allowed_hosts

    monkeypatch.delenv(UI_ALLOWED_HOSTS_ENV, raising=False)
    cfg = load_cams_config(_cfg(tmp_path, {"enabled": True, "allowed_hosts": ["nvr.lan", "192.168.1.10", "[fd00::5]"]},
                                pets_dir))
    assert cfg.ui.allowed_hosts == ["nvr.lan", "192.168.1.10", "[fd00::5]"]
    assert ui_allowed_hosts(None, cfg.ui, {}) == ("nvr.lan", "192.168.1.10", "[fd00::5]")
    assert ui_allowed_hosts(None, cfg.ui, {UI_ALLOWED_HOSTS_ENV: "proxy.lan,"}) == ("proxy.lan",)
    assert ui_allowed_hosts(["cli.lan"], cfg.ui, {UI_ALLOWED_HOSTS_ENV: "proxy.lan"}) == ("cli.lan",)
    assert ui_allowed_hosts(None, None, {UI_ALLOWED_HOSTS_ENV: " "}) == ()
    for bad in ("http://nvr.lan", "nvr.lan:8080", "*.lan", "nvr lan", "", "nvr.lan/x"):
        _cfg(tmp_path, {"allowed_hosts": [bad]}, pets_dir)
        with pytest.raises(ConfigError, match=r"cams.yaml: ui.allowed_hosts: .*is not a host name") as e:
            load_cams_config(tmp_path / "cams.yaml")
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=rf"^{UI_ALLOWED_HOSTS_ENV}: 'a.lan:80' is not a host name"):
        ui_allowed_hosts(None, None, {UI_ALLOWED_HOSTS_ENV: "ok.lan,a.lan:80"})
    with pytest.raises(ConfigError, match=r"^--allow-host: 'https://x' is not a host name"):
        ui_allowed_hosts(["https://x"], None, {})


def test_a_runs_console_answers_its_allowed_hosts(tmp_path, pets_dir, monkeypatch) -> None:
    """The run's console takes ``ui.allowed_hosts`` (and the variable over it), as ``serve`` does."""
    from pipeline.camconfig import UI_ALLOWED_HOSTS_ENV
    from pipeline.runner.loop import PipelineRunner

    monkeypatch.delenv(UI_ALLOWED_HOSTS_ENV, raising=False)
    cfg = load_cams_config(_cfg(tmp_path, {"enabled": True, "port": 0, "allowed_hosts": ["nvr.lan"]}, pets_dir))
    for env, expected in ((None, ("nvr.lan",)), ("proxy.lan", ("proxy.lan",))):
        if env is not None:
            monkeypatch.setenv(UI_ALLOWED_HOSTS_ENV, env)
        server = PipelineRunner(cfg, progress=False)._reserve_console()  # binds the port, serves nothing yet
        try:
            assert server.allowed_hosts == expected
        finally:
            server.stop()


def test_watching_a_run_does_not_change_its_key(tmp_path, pets_dir) -> None:
    """The console and health reporting watch a run: turning the console on to watch a paused run resumes it
    (same default run key and checkpoint fingerprint) instead of starting over. Outputs still count."""
    base = load_cams_config(_cfg(tmp_path, {}, pets_dir))
    watched = load_cams_config(_cfg(tmp_path, {"enabled": True, "port": 0, "allowed_hosts": ["nvr.lan"]}, pets_dir,
                                    health={"log_every_s": 2.0, "metrics_port": 0}))
    assert watched.fingerprint() == base.fingerprint()
    other = load_cams_config(_cfg(tmp_path, {}, pets_dir, outputs={"video": True}))
    assert other.fingerprint() != base.fingerprint()
