"""A real MQTT broker on loopback: Debian's ``mosquitto`` in a subprocess with its own config file.

Used by tests/pipeline/test_mqtt.py and tools/bench_mqtt.py. The broker listens on
``127.0.0.1:port`` only (never a system service), keeps its sessions in a persistence file under
its own folder (saved every second, so a subscriber's persistent session survives a kill -9 and a
restart) and can be killed (SIGKILL, a crash) and started again on the same port. ``users``
({name: password}) turns anonymous access off and writes a password file with
``mosquitto_passwd``.
"""

from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

#: where Debian installs the broker (``/usr/sbin`` is not on a normal user's PATH)
MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto")


class BrokerError(RuntimeError):
    """mosquitto is missing or did not accept connections in time (message: the command and its log tail)."""


def find_mosquitto() -> str | None:
    """The mosquitto executable, or None when it is not installed (tools/setup_system.sh installs it)."""
    for name in MOSQUITTO_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def make_test_certs(folder: Path) -> dict[str, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 (``openssl`` CLI), valid 2 days:
    {"ca": ca.pem, "cert": server.pem, "key": server.key} under ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("openssl")
    if exe is None:
        raise BrokerError("openssl is not installed (Debian package openssl; tools/setup_system.sh)")
    ca, ca_key, cert, key, csr = (folder / n for n in ("ca.pem", "ca.key", "server.pem", "server.key", "server.csr"))
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n", encoding="utf-8")
    for cmd in ([exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
                 "-subj", "/CN=reid-test-ca"],
                [exe, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
                [exe, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
                 "-days", "2", "-extfile", ext]):
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
    return {"ca": ca, "cert": cert, "key": key}


class MosquittoBroker:
    """mosquitto on ``127.0.0.1:port`` with config, persistence and log under ``folder``; ``tls``: the
    :func:`make_test_certs` files, and the listener speaks TLS only."""

    def __init__(self, folder: Path, port: int, users: dict[str, str] | None = None,
                 tls: dict[str, Path] | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.exe = find_mosquitto()
        if self.exe is None:
            raise BrokerError("mosquitto is not installed (Debian package mosquitto; tools/setup_system.sh)")
        # started as root, mosquitto would switch to the user "mosquitto", who cannot read a private temp folder
        lines = [f"user {getpass.getuser()}", f"listener {port} 127.0.0.1", "persistence true",
                 f"persistence_location {self.folder}/", "autosave_interval 1", f"log_dest file {self.folder / 'mosquitto.log'}", "log_type all"]
        if tls:
            lines[2:2] = [f"cafile {tls['ca']}", f"certfile {tls['cert']}", f"keyfile {tls['key']}"]
        if users:
            pw = self.folder / "passwd"
            pw.write_text("", encoding="utf-8")
            for name, password in users.items():
                subprocess.run([shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd", "-b", str(pw),
                                name, password], check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.proc: subprocess.Popen | None = None
        self.kills = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start and wait until the port accepts connections."""
        cmd = [self.exe, "-c", str(self.config)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if _port_open(self.port):
                return
            time.sleep(0.05)
        tail = self.log_tail()
        self.stop()
        raise BrokerError(f"mosquitto did not start ({' '.join(cmd)}): {tail}")

    def kill(self) -> None:
        """SIGKILL (a crash: no goodbye to the clients, sessions as of the last autosave); start() brings it back."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
            self.kills += 1

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL after 5 s)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def log_tail(self, chars: int = 500) -> str:
        log = self.folder / "mosquitto.log"
        return log.read_text(errors="replace")[-chars:].strip() if log.is_file() else ""

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class EventSubscriber:
    """A paho subscriber to ``topic`` (QoS 1) on ``127.0.0.1:port`` that keeps every message it gets.

    ``persistent``: a persistent session (clean_session false, fixed client id), so a broker that kept
    its sessions holds the messages published while this subscriber was away and delivers them when it
    reconnects. It re-subscribes on every connect (a broker that lost the session forgets the
    subscription). ``messages``: (topic, JSON-decoded payload or text, dup flag, retained flag, time).
    """

    def __init__(self, port: int, topic: str, client_id: str = "reid-events-subscriber", persistent: bool = True,
                 username: str | None = None, password: str | None = None, tls_ca: Path | None = None) -> None:
        import paho.mqtt.client as mqtt

        self.topic = topic
        self.messages: list[tuple[str, object, bool, bool, float]] = []
        self.connects = 0
        self._subscribed = threading.Event()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                   protocol=mqtt.MQTTv311, clean_session=not persistent)
        if username is not None:
            self._client.username_pw_set(username, password)
        if tls_ca is not None:
            self._client.tls_set(ca_certs=str(tls_ca))
        self._client.reconnect_delay_set(0.1, 0.5)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = self._on_message
        self.port = port

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            self.connects += 1
            client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, msg) -> None:
        import json

        try:
            body: object = json.loads(msg.payload)
        except ValueError:
            body = msg.payload.decode(errors="replace")
        self.messages.append((msg.topic, body, bool(msg.dup), bool(msg.retain), time.time()))

    def start(self, timeout: float = 10.0) -> EventSubscriber:
        """Connect and wait for the subscription to be acknowledged."""
        self._subscribed.clear()
        self._client.connect_async("127.0.0.1", self.port, keepalive=10)
        self._client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise BrokerError(f"could not subscribe to {self.topic} on 127.0.0.1:{self.port} in {timeout} s")
        return self

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def payloads(self, topic: str | None = None) -> list:
        return [m[1] for m in list(self.messages) if topic is None or m[0] == topic]

    def event_ids(self) -> list[str]:
        """The ``id`` of every event message received, duplicates included, in arrival order."""
        return [p["id"] for p in self.payloads() if isinstance(p, dict) and "id" in p]

    def wait_for_ids(self, ids, timeout: float) -> bool:
        """Wait until every id in ``ids`` has arrived (True) or ``timeout`` s passed (False)."""
        want = set(ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if want <= set(self.event_ids()):
                return True
            time.sleep(0.05)
        return want <= set(self.event_ids())
