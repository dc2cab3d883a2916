"""Broker credentials and ACLs, loaded by a real Mosquitto."""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
import uuid

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from dashboard.mqtt_auth import mosquitto_hash, write_mosquitto_auth


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="mosquitto_passwd not installed")
def test_hash_matches_mosquitto_passwd(tmp_path) -> None:
    pwfile = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pwfile), "alice", "s3cret pw"], check=True)
    stored = pwfile.read_text().strip().split(":", 1)[1]
    salt = base64.b64decode(stored.split("$")[3])
    assert mosquitto_hash("s3cret pw", salt) == stored


class Client:
    """An MQTT 5 client that records PUBACK reason codes and received messages."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.acks: dict[int, int] = {}
        self.received: list[str] = []
        self.connect_rc = None
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"{user}-{uuid.uuid4().hex[:6]}", protocol=mqtt.MQTTv5
        )
        self.c.username_pw_set(user, password)
        self.c.on_connect = self._on_connect
        self.c.on_publish = lambda _c, _u, mid, rc, _p: self.acks.__setitem__(mid, rc.value)
        self.c.on_message = lambda _c, _u, m: self.received.append(m.topic)
        self.c.on_subscribe = lambda *_: self.subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.connected.wait(30), f"{user}: no CONNACK within 30 s"

    def subscribe(self, topic: str) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK, so nothing published next can be missed."""
        self.subscribed.clear()
        self.c.subscribe(topic, qos=1)
        assert self.subscribed.wait(30), f"no SUBACK for {topic}"

    def _on_connect(self, _c, _u, _f, rc, _p) -> None:
        self.connect_rc = rc.value
        self.connected.set()

    def publish(self, topic: str, wait_until) -> int:
        """Publish QoS 1 and return the PUBACK's reason code (0 = accepted)."""
        info = self.c.publish(topic, b"{}", qos=1)
        wait_until(lambda: info.mid in self.acks, timeout_s=5)
        return self.acks[info.mid]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def test_restaurants_confined_to_their_topics(tmp_path, mosquitto_with, wait_until) -> None:
    files = write_mosquitto_auth(tmp_path / "auth", ["r-a", "r-b"])
    assert set(files.created) == {"dashboard", "r-a", "r-b"}
    assert oct(files.password_file.stat().st_mode & 0o777) == "0o600"
    broker = mosquitto_with(files.conf_file.read_text())
    pw = {u: (files.credentials_dir / f"{u}.txt").read_text().strip() for u in ("dashboard", "r-a", "r-b")}

    dash = Client(broker.port, "dashboard", pw["dashboard"])
    dash.subscribe("$share/dash/bk/v1/+/camera/+/event")
    spy = Client(broker.port, "r-b", pw["r-b"])
    spy.subscribe("bk/v1/#")
    ra = Client(broker.port, "r-a", pw["r-a"])
    try:
        assert (dash.connect_rc, ra.connect_rc) == (0, 0)
        assert ra.publish("bk/v1/r-a/camera/cam-1/event", wait_until) == 0
        assert ra.publish("bk/v1/r-b/camera/cam-1/event", wait_until) == 135  # Not authorized
        wait_until(lambda: dash.received == ["bk/v1/r-a/camera/cam-1/event"])
        dash.c.publish("bk/v1/r-b/agent/box-1/command", b"{}", qos=1).wait_for_publish(5)
        dash.c.publish("bk/v1/r-a/agent/box-1/command", b"{}", qos=1).wait_for_publish(5)
        wait_until(lambda: spy.received == ["bk/v1/r-b/agent/box-1/command"])  # nothing of r-a's
    finally:
        for c in (dash, spy, ra):
            c.close()
    bad = Client(broker.port, "r-a", "wrong-password")
    assert bad.connect_rc in (134, 135)  # Mosquitto 2.0 says "Not authorized"
    bad.close()


def test_rerun_keeps_passwords_unless_rotated(tmp_path) -> None:
    first = write_mosquitto_auth(tmp_path, ["r-a"])
    pw = (first.credentials_dir / "r-a.txt").read_text()
    again = write_mosquitto_auth(tmp_path, ["r-a", "r-b"])
    assert again.created == ["r-b"] and (again.credentials_dir / "r-a.txt").read_text() == pw
    assert (
        "user r-b\ntopic write bk/v1/r-b/#\ntopic read bk/v1/r-b/agent/+/command"
        in again.acl_file.read_text()
    )
    rotated = write_mosquitto_auth(tmp_path, ["r-a", "r-b"], rotate=True)
    assert set(rotated.created) == {"dashboard", "r-a", "r-b"}
