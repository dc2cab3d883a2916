"""Shared fixtures for the dashboard: a real Mosquitto on a free port, SQLite and PostgreSQL databases,
message builders and a polling helper."""

from __future__ import annotations

import contextlib
import hashlib
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from brightkitchen.contract import EventMessage, MediaMessage, utc_now
from dashboard import admin
from dashboard.config import DashboardConfig
from dashboard.db import open_database
from dashboard.media import FilesystemStore
from dashboard.persist import Persister

MOSQUITTO = "/usr/sbin/mosquitto"
PG_ADMIN_URL = "postgresql+psycopg://{user}@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s (last value {value!r})")
        time.sleep(interval_s)


@dataclass
class Broker:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def start_mosquitto(folder: Path, extra: str = "") -> Broker:
    """Mosquitto on a free port, with queues big enough not to drop messages for a slow subscriber."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = folder / "mosquitto.log"
    conf = folder / "mosquitto.conf"
    anonymous = "" if "allow_anonymous" in extra else "allow_anonymous true\n"
    conf.write_text(
        f"listener {port} 127.0.0.1\n{anonymous}user root\npersistence false\n"
        "max_queued_messages 100000\nmax_inflight_messages 1000\n"
        f"log_dest file {log}\nlog_type error\nlog_type warning\nlog_type notice\n{extra}"
    )
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Broker(port, proc, log)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(
                    f"mosquitto did not start: {err} {log.read_text() if log.exists() else ''}"
                ) from None
            time.sleep(0.02)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    b = start_mosquitto(tmp_path / "broker")
    yield b
    b.stop()


def _pg_url() -> str | None:
    for user in ("postgres", "root"):
        url = PG_ADMIN_URL.format(user=user)
        try:
            with create_engine(url).connect() as conn:
                conn.execute(text("SELECT 1"))
            return url
        except Exception:
            continue
    return None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_config(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DashboardConfig]:
    """A dashboard config on a fresh database: SQLite in tmp_path, or a unique PostgreSQL schema."""
    base = {
        "secret_key_file": str(tmp_path / "secret_key"),
        "media": {"backend": "filesystem", "path": str(tmp_path / "media")},
        "http": {"secure_cookies": True},
    }
    if request.param == "sqlite":
        yield DashboardConfig.model_validate({**base, "database_url": f"sqlite:///{tmp_path}/dash.db"})
        return
    url = _pg_url()
    if url is None:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 (database test) is not reachable")
    schema = f"bk_test_{uuid.uuid4().hex[:12]}"
    yield DashboardConfig.model_validate({**base, "database_url": url, "database_schema": schema})
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def sessions(db_config: DashboardConfig) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_database(db_config)
    yield factory
    engine.dispose()


@pytest.fixture
def persister(sessions: sessionmaker[Session], db_config: DashboardConfig) -> Persister:
    return Persister(sessions, FilesystemStore(db_config.media.path))


@pytest.fixture
def tenants(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Restaurants r-a (North) and r-b (South), a camera each, a user per role; password secret-pw."""
    with sessions.begin() as s:
        admin.create_restaurant(s, "r-a", "Restaurant A", "North")
        admin.create_restaurant(s, "r-b", "Restaurant B", "South")
        admin.create_camera(s, "r-a", "cam-1")
        admin.create_camera(s, "r-b", "cam-1")
        admin.create_user(s, "admin", "secret-pw", "admin")
        admin.create_user(s, "insp-north", "secret-pw", "inspector", districts=["North"])
        admin.create_user(s, "rest-a", "secret-pw", "restaurant", restaurant_id="r-a")
        admin.create_user(s, "rest-b", "secret-pw", "restaurant", restaurant_id="r-b")
        admin.create_user(s, "ml", "secret-pw", "ml")
    return {"password": "secret-pw"}


JPEG_BYTES = b"\xff\xd8\xff\xe0" + b"fake-jpeg-body" * 100 + b"\xff\xd9"


def event_msg(
    restaurant: str = "r-a",
    camera: str = "cam-1",
    event_id: uuid.UUID | None = None,
    seq: int = 0,
    phase: str = "new",
    snapshot: bytes | None = JPEG_BYTES,
    **extra: Any,
) -> EventMessage:
    """A valid event; with ``snapshot`` it announces that JPEG as its snapshot."""
    now = utc_now()
    media = []
    if snapshot is not None:
        media = [
            {
                "kind": "snapshot",
                "content_type": "image/jpeg",
                "sha256": hashlib.sha256(snapshot).hexdigest(),
                "size_bytes": len(snapshot),
            }
        ]
    fields: dict[str, Any] = {
        "event_id": event_id or uuid.uuid4(),
        "seq": seq,
        "phase": phase,
        "restaurant": restaurant,
        "camera": camera,
        "agent": "box-1",
        "rule": "board_misuse",
        "severity": "high",
        "started_at": now - timedelta(seconds=10),
        "sent_at": now,
        "score": 0.87,
        "detections": [
            {"label": "raw_meat", "score": 0.87, "box": {"x1": 0.1, "y1": 0.2, "x2": 0.4, "y2": 0.5}},
            {"label": "board_green", "score": 0.9, "box": {"x1": 0.05, "y1": 0.1, "x2": 0.6, "y2": 0.7}},
        ],
        "details": {"board_colour": "green", "food": "raw_meat"},
        "frame": {"width": 1280, "height": 720},
        "model": {"name": "bk-detector", "version": "1.0.0"},
        "media": media,
    }
    if phase == "end":
        fields["ended_at"] = now
    fields.update(extra)
    return EventMessage.model_validate(fields)


def media_msg(
    event: EventMessage, blob: bytes = JPEG_BYTES, kind: str = "snapshot", content_type: str = "image/jpeg"
) -> MediaMessage:
    return MediaMessage.from_bytes(
        blob,
        event_id=event.event_id,
        restaurant=event.restaurant,
        camera=event.camera,
        kind=kind,
        content_type=content_type,
        captured_at=event.started_at,
    )


class Publisher:
    """An MQTT 5 test client that publishes QoS 1 and waits for each PUBACK."""

    def __init__(self, port: int, username: str | None = None, password: str | None = None) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(timeout=10)
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def publisher(broker: Broker) -> Iterator[Publisher]:
    p = Publisher(broker.port)
    yield p
    p.close()


# Test modules get the helpers through fixtures (tests/ is not a package, so they cannot import conftest).
@pytest.fixture(name="wait_until")
def _wait_until_fixture() -> Callable[..., Any]:
    return wait_until


@pytest.fixture
def make_event() -> Callable[..., EventMessage]:
    return event_msg


@pytest.fixture
def make_media() -> Callable[..., MediaMessage]:
    return media_msg


@pytest.fixture
def jpeg() -> bytes:
    return JPEG_BYTES


@pytest.fixture
def start_worker(broker: Broker, persister: Persister) -> Iterator[Callable[..., Any]]:
    """Start ingest workers on the test broker (same client id = same persistent session)."""
    from dashboard.config import MqttSection
    from dashboard.ingest import IngestWorker

    running: list[IngestWorker] = []

    def start(client_id: str = "ingest-1") -> IngestWorker:
        worker = IngestWorker(
            MqttSection(port=broker.port, client_id=client_id, share_group="dash"), persister
        )
        worker.start()
        wait_until(worker.connected.is_set)
        running.append(worker)
        return worker

    yield start
    for w in running:
        if w.client.is_connected() or w._thread.is_alive():
            w.stop()


@pytest.fixture
def mosquitto_with(tmp_path: Path) -> Iterator[Callable[[str], Broker]]:
    """Start a Mosquitto with extra config lines (e.g. password_file/acl_file); stopped afterwards."""
    started: list[Broker] = []

    def start(extra: str) -> Broker:
        b = start_mosquitto(tmp_path / f"broker-{len(started)}", extra)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture
def seeded(persister: Persister, tenants: dict[str, Any]) -> dict[str, Any]:
    """One alert with a snapshot for each of r-a and r-b, stored through the ingest path."""
    from brightkitchen.contract import encode, topic_for

    out: dict[str, Any] = {}
    for rid in ("r-a", "r-b"):
        ev = event_msg(restaurant=rid)
        media = media_msg(ev)
        assert persister.handle(topic_for(ev), encode(ev)).outcome == "stored"
        assert persister.handle(topic_for(media), encode(media)).outcome == "stored"
        out[rid] = ev.event_id
    from brightkitchen.contract import StatsMessage

    stats = StatsMessage(
        restaurant="r-a",
        agent="box-1",
        at=utc_now(),
        interval_s=10,
        outbox_depth=0,
        outbox_bytes=0,
        model={"name": "bk-detector", "version": "1.0.0"},
        cameras=[
            {
                "camera": "cam-1",
                "online": True,
                "fps": 12.5,
                "inference_ms": 18.0,
                "frames_processed": 10,
                "frames_skipped": 2,
                "last_frame_at": utc_now(),
            }
        ],
    )
    assert persister.handle(topic_for(stats), encode(stats)).outcome == "stored"
    with persister.sessions() as s:
        from sqlalchemy import select

        from dashboard.models import Media

        out["media"] = {str(m.event_id): m.id for m in s.scalars(select(Media))}
    return out


@pytest.fixture
def web(db_config: DashboardConfig, sessions: sessionmaker[Session], persister: Persister):
    """A TestClient factory over HTTPS (the session cookie is Secure); ``web()`` gives a fresh browser."""
    from fastapi.testclient import TestClient

    from dashboard.web.app import create_app

    app = create_app(db_config, sessions=sessions, store=persister.store)
    clients: list[TestClient] = []

    def client() -> TestClient:
        c = TestClient(app, base_url="https://testserver", follow_redirects=False)
        clients.append(c)
        return c

    yield client
    for c in clients:
        c.close()


def csrf_of(html: str) -> str:
    import re

    m = re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert m, "no CSRF token in page"
    return m[1]


@pytest.fixture
def login(web: Callable[[], Any]) -> Callable[[str], Any]:
    """``login('rest-a')`` → a TestClient with that user's session; ``client.csrf`` holds its token."""

    def do(username: str, password: str = "secret-pw") -> Any:
        c = web()
        token = csrf_of(c.get("/login").text)
        r = c.post(
            "/login", data={"username": username, "password": password, "csrf_token": token, "next": "/"}
        )
        assert r.status_code == 303, r.text
        c.csrf = csrf_of(c.get("/health").text)
        return c

    return do


class TcpProxy:
    """A TCP forwarder we can cut, to take a real database away from the app and bring it back."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        import threading

        self.upstream = upstream
        self.port = free_port()
        self._threading = threading
        self._conns: list[socket.socket] = []
        self._server: socket.socket | None = None

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen()
        self._server = server
        self._threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                self._threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            self._server.close()
            self._server = None
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self._conns.clear()


@pytest.fixture
def tcp_proxy() -> Iterator[Callable[[tuple[str, int]], TcpProxy]]:
    proxies: list[TcpProxy] = []

    def make(upstream: tuple[str, int]) -> TcpProxy:
        p = TcpProxy(upstream)
        p.start()
        proxies.append(p)
        return p

    yield make
    for p in proxies:
        p.cut()


class CommandListener:
    """Subscribes to every agent's command topic (as an edge agent would) and decodes what arrives;
    ``topics[i]`` is where ``commands[i]`` was published."""

    def __init__(self, port: int) -> None:
        import threading

        from brightkitchen.contract import decode

        self.commands: list[Any] = []
        self.topics: list[str] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="cmd-listener", protocol=mqtt.MQTTv5)
        self.client.on_subscribe = lambda *_: subscribed.set()

        def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
            with self._lock:
                self.commands.append(decode(msg.topic, msg.payload))
                self.topics.append(msg.topic)

        self.client.on_message = on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("bk/v1/+/agent/+/command", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10), "command listener not subscribed"

    def wait_for(self, count: int) -> list[Any]:
        """The first ``count`` commands, once that many arrived."""
        wait_until(lambda: len(self.commands) >= count)
        with self._lock:
            return self.commands[:count]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def command_listener(broker: Broker) -> Iterator[CommandListener]:
    listener = CommandListener(broker.port)
    yield listener
    listener.close()
