"""Outbox → MQTT link → real Mosquitto (TLS, passwords, ACLs): order, outages, restarts, authorisation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt

from brightkitchen.contract import (
    CommandMessage,
    agent_topic,
    camera_topic,
    encode,
    utc_now,
)
from edge_agent.mqtt_link import INFLIGHT_WINDOW, MqttLink
from edge_agent.outbox import Outbox

from .conftest import AUTOSAVED_S, REPO, Broker, Collector, wait_until
from .helpers import edge_cfg, event_row

# The issue asks for a 30 s outage; the default keeps the suite short. BK_TEST_OUTAGE_S=30 runs the full one.
OUTAGE_S = float(os.environ.get("BK_TEST_OUTAGE_S", "6"))


def _link(broker: Broker, outbox: Outbox, user: str = "r-a", commands: list | None = None) -> MqttLink:
    cfg = edge_cfg(mqtt=broker.edge_mqtt(user), agent={"id": "box-1", "restaurant": user})
    got = commands if commands is not None else []
    return MqttLink(cfg, outbox, got.append, lambda: (["cam1"], None), "test")


def _numbers(collector: Collector) -> list[int]:
    return [int(m.details["n"]) for m in collector.of("event")]


def test_outbox_drains_in_order_through_tls_and_acl(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 10**8)
    for i in range(60):
        ob.put(*event_row(i))
    link = _link(broker, ob)
    link.start()
    try:
        wait_until(lambda: len(_numbers(collector)) >= 60, what="60 events")
        assert _numbers(collector) == list(range(60))
        wait_until(lambda: ob.depth() == (0, 0), what="outbox to empty")
        (online,) = [m for m in collector.of("availability") if m.status == "online"]
        assert online.cameras == ["cam1"]
    finally:
        link.stop()
    wait_until(lambda: any(m.status == "offline" for m in collector.of("availability")), what="offline")
    assert not collector.errors


def test_broker_outage_loses_nothing_and_duplicates_nothing(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 10**8)
    link = _link(broker, ob)
    link.start()
    stop = threading.Event()
    total = 0

    def produce() -> None:  # an agent that keeps finding events, one every 0.1 s, whatever the broker does
        nonlocal total
        while not stop.is_set():
            ob.put(*event_row(total))
            link.notify()
            total += 1
            time.sleep(0.1)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(AUTOSAVED_S)  # also lets the broker autosave the collector's persistent session
        broker.kill()  # SIGKILL: no goodbye to anyone
        wait_until(lambda: not link.connected.is_set(), what="the link to notice")
        time.sleep(OUTAGE_S)
        assert ob.depth()[0] > 0, "messages wait on disk during the outage"
        broker.start()
        time.sleep(1.5)
        stop.set()
        producer.join()
        wait_until(
            lambda: len(set(_numbers(collector))) >= total, timeout_s=30 + OUTAGE_S, what="every event"
        )
        got = _numbers(collector)
        assert sorted(set(got)) == list(range(total))
        # QoS 1 across a broker crash is at least once: a message the broker took but had not acked (or not
        # yet saved as delivered to the subscriber) at the SIGKILL comes again, with the same stable id, which
        # the receiver dedupes on. Only those in flight at the kill may repeat; nothing after it.
        dupes = sorted(n for n in set(got) if got.count(n) > 1)
        assert len(dupes) <= INFLIGHT_WINDOW, f"duplicates: {dupes}"
        first = list(dict.fromkeys(got))
        assert first == sorted(first), "delivered in order"
    finally:
        stop.set()
        link.stop()


def test_agent_killed_with_undelivered_outbox_resumes_after_restart(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    path = tmp_path / "o.sqlite"
    time.sleep(AUTOSAVED_S)  # the collector's persistent session is on disk
    broker.kill()  # nothing can be delivered while the first process runs
    code = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(REPO / "tests" / "edge_agent")!r})
        from edge_agent.mqtt_link import INFLIGHT_WINDOW, MqttLink
        from edge_agent.outbox import Outbox
        from helpers import edge_cfg
        ob = Outbox({str(path)!r}, 10**8)
        cfg = edge_cfg(mqtt={broker.edge_mqtt()!r})
        link = MqttLink(cfg, ob, print, lambda: ([], None), "test")
        link.start()
        from helpers import event_row
        for i in range(40):
            ob.put(*event_row(i))
        print("queued", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "queued"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    broker.start()
    wait_until(collector.subscribed.is_set, what="the collector to subscribe again")
    ob = Outbox(path, 10**8)
    assert ob.depth()[0] == 40
    link = _link(broker, ob)
    link.start()
    try:
        wait_until(lambda: len(_numbers(collector)) >= 40, timeout_s=30, what="the outbox to resume")
        assert _numbers(collector) == list(range(40))
    finally:
        link.stop()


def test_restaurant_a_cannot_publish_into_b(broker: Broker, collector: Collector, tmp_path: Path) -> None:
    client = broker.client("r-a", "intruder")
    acks: dict[int, mqtt.ReasonCode] = {}
    client.on_publish = lambda _c, _u, mid, rc, _p: acks.__setitem__(mid, rc)
    client.loop_start()
    try:
        payload = event_row(0, restaurant="r-b")[3]
        info = client.publish(camera_topic("r-b", "cam1", "event"), payload, qos=1)
        rc = wait_until(lambda: acks.get(info.mid), what="PUBACK")
        assert rc.is_failure and str(rc) == "Not authorized"
        own = client.publish(camera_topic("r-a", "cam1", "event"), event_row(1)[3], qos=1)
        assert not wait_until(lambda: acks.get(own.mid), what="PUBACK").is_failure
    finally:
        client.loop_stop()
        client.disconnect()
    time.sleep(0.3)
    assert [m.restaurant for m in collector.of("event")] == ["r-a"]


def test_link_drops_a_refused_row_and_goes_on(broker: Broker, collector: Collector, tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 10**8)
    ob.put("event:foreign", "event", camera_topic("r-b", "cam1", "event"), event_row(0, "r-b")[3])
    ob.put(*event_row(1))
    link = _link(broker, ob)
    link.start()
    try:
        wait_until(lambda: _numbers(collector) == [1], what="the next row")
        wait_until(lambda: ob.depth()[0] == 0, what="the refused row to be dropped")
    finally:
        link.stop()


def test_wrong_password_is_reported_not_fatal(broker: Broker, tmp_path: Path) -> None:
    cfg = edge_cfg(mqtt={**broker.edge_mqtt(), "password": "wrong"})
    link = MqttLink(cfg, Outbox(tmp_path / "o.sqlite", 10**6), print, lambda: ([], None), "test")
    link.start()
    try:
        err = wait_until(lambda: link.last_error, what="the refusal")
        assert "Bad user name or password" in err or "Not authorized" in err
        assert not link.connected.is_set()
    finally:
        link.stop()


def test_commands_arrive_and_replies_leave_through_the_outbox(
    broker: Broker, collector: Collector, tmp_path: Path
) -> None:
    commands: list[CommandMessage] = []
    ob = Outbox(tmp_path / "o.sqlite", 10**6)
    link = _link(broker, ob, commands=commands)
    link.start()
    try:
        wait_until(link.connected.is_set, what="connect")
        time.sleep(0.3)  # the subscription
        cmd = CommandMessage(command_id=uuid.uuid4(), issued_at=utc_now(), action="ping")
        info = collector.client.publish(agent_topic("r-a", "box-1", "command"), encode(cmd), qos=1)
        info.wait_for_publish(5)
        wait_until(lambda: commands, what="the command")
        assert commands[0].command_id == cmd.command_id
    finally:
        link.stop()


def test_stop_survives_a_broker_that_vanished_while_stopping(broker: Broker, tmp_path: Path) -> None:
    """The demo stops broker and agent together: the agent still saw the link up when it sent its final
    stats and `offline`, and the publish raised instead of the agent stopping cleanly."""
    link = _link(broker, Outbox(tmp_path / "o.sqlite", 10**6))
    link.start()
    wait_until(link.connected.is_set, what="connected")
    broker.kill()
    wait_until(lambda: not link.connected.is_set(), what="the link to notice")
    link.connected.set()  # the moment before it noticed: the flag still says connected
    link.stop(last_words=("bk/v1/r-a/agent/box-1/stats", b"{}"))
