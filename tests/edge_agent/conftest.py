"""Shared fixtures: a real Mosquitto (TLS, passwords, per-restaurant ACLs), a collector, a model, a clip."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from brightkitchen.contract import decode
from brightkitchen.model_card import newest_model

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
REPO = Path(__file__).resolve().parents[2]
USERS = {"r-a": "pw-a", "r-b": "pw-b", "ingest": "pw-ingest"}
# mosquitto saves its persistence when more than ``autosave_interval`` (1) whole seconds have passed since
# the last save, so a session made just now is on disk within 2 s; wait that long before killing the broker.
AUTOSAVED_S = 2.5
ACL = "user ingest\ntopic readwrite bk/v1/#\n\npattern readwrite bk/v1/%u/#\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout_s: float = 15.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None, issuer_key: Any, ca: bool
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer or name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        alt = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1/localhost."""
    folder = tmp_path_factory.mktemp("certs")
    ca_key, srv_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _cert("bk-test-ca", ca_key, None, ca_key, ca=True)
    srv = _cert("localhost", srv_key, ca.subject, ca_key, ca=False)
    out = {"ca": folder / "ca.crt", "cert": folder / "server.crt", "key": folder / "server.key"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    out["cert"].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    out["key"].write_bytes(
        srv_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return out


@dataclass
class Broker:
    """Mosquitto with TLS, a password file and ACLs; ``kill()`` and ``start()`` again on the same port."""

    folder: Path
    certs: dict[str, Path]
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    def write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        pw = self.folder / "passwd"
        pw.write_text("")
        for user, password in USERS.items():
            subprocess.run([MOSQUITTO_PASSWD, "-b", str(pw), user, password], check=True, capture_output=True)
        (self.folder / "acl").write_text(ACL)
        conf = self.folder / "mosquitto.conf"
        conf.write_text(
            f"user root\nlistener {self.port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {pw}\nacl_file {self.folder / 'acl'}\n"
            f"cafile {self.certs['ca']}\ncertfile {self.certs['cert']}\nkeyfile {self.certs['key']}\n"
            f"persistence true\npersistence_location {self.folder}/\nautosave_interval 1\n"
            "max_queued_messages 100000\nmax_inflight_messages 100\n"
            f"log_dest file {self.folder / 'mosquitto.log'}\nlog_type all\n"
        )
        return conf

    def start(self) -> Broker:
        conf = self.folder / "mosquitto.conf"
        if not conf.exists():
            self.write_config()
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                )
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(up, 10, "mosquitto to listen")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            self.proc.wait(10)

    def client(self, user: str, client_id: str, clean_start: bool = True) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        c.username_pw_set(user, USERS[user])
        c.tls_set(ca_certs=str(self.certs["ca"]))
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600
        c.connect("127.0.0.1", self.port, clean_start=clean_start, properties=props)
        return c

    def edge_mqtt(self, user: str = "r-a") -> dict[str, Any]:
        """The ``mqtt`` section of an edge config for this broker."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "username": user,
            "password": USERS[user],
            "tls": {"ca_file": str(self.certs["ca"])},
            "stats_interval_s": 1,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 2,
        }


@pytest.fixture
def broker(tmp_path: Path, certs: dict[str, Path], mosquitto_available: None) -> Iterator[Broker]:
    b = Broker(tmp_path / "broker", certs).start()
    yield b
    b.kill(signal.SIGTERM)


class Collector:
    """The dashboard's side, as a test sees it: a persistent session on bk/v1/#, decoding every message."""

    def __init__(self, broker: Broker) -> None:
        self.messages: list[tuple[str, Any]] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = broker.client("ingest", "collector", clean_start=False)
        self.client.on_connect = lambda c, *_: c.subscribe("bk/v1/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_disconnect = lambda *_: self.subscribed.clear()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.subscribe("bk/v1/#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            try:
                self.messages.append((msg.topic, decode(msg.topic, msg.payload)))
            except Exception as exc:
                self.errors.append(f"{msg.topic}: {exc}")

    def of(self, kind: str) -> list[Any]:
        with self._lock:
            return [m for _, m in self.messages if getattr(m, "type", None) == kind]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def collector(broker: Broker) -> Iterator[Collector]:
    c = Collector(broker)
    yield c
    c.close()


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The newest model folder in models/ (or $BK_TEST_MODEL); tests that need one skip without it."""
    if env := os.environ.get("BK_TEST_MODEL"):
        return Path(env)
    try:
        return newest_model()
    except FileNotFoundError:
        pytest.skip("no model folder in models/ yet")


@pytest.fixture(scope="session")
def synth_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One synthetic clip with ground truth (training/synth/clips.py), made once per session."""
    clips = pytest.importorskip("training.synth.clips")
    out = tmp_path_factory.mktemp("clips")
    info = clips.write_clips(out, 1, seed=11, progress=False)[0]
    return out / info.name


@pytest.fixture
def corrupt_video(tmp_path: Path) -> Path:
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    return path


@pytest.fixture(scope="session")
def mosquitto_available() -> None:
    if not (shutil.which(MOSQUITTO) and shutil.which(MOSQUITTO_PASSWD)):
        pytest.skip("mosquitto is not installed")
