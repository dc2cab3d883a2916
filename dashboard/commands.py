"""Commands to edge agents over MQTT, with the dashboard's broker login (its ACL may write
``bk/v1/+/agent/+/command``). One short connection per batch: commands are rare, human-triggered actions.

MQTT 5, QoS 1, and every PUBACK's reason code is checked, so a denied publish ("Not authorized") is an
error here rather than a silent drop.
"""

from __future__ import annotations

import secrets
import threading

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from brightkitchen.contract import CommandMessage, agent_topic, encode
from dashboard.config import MqttSection
from dashboard.ingest import make_client

PUBLISH_TIMEOUT_S = 10.0


class CommandPublishError(RuntimeError):
    """The broker could not be reached or refused a command."""


def publish_commands(
    cfg: MqttSection, commands: list[tuple[str, str, CommandMessage]], timeout_s: float = PUBLISH_TIMEOUT_S
) -> None:
    """Publish ``(restaurant, agent, command)`` triples and wait for every PUBACK; raise on any failure."""
    client = make_client(cfg, client_id=f"{cfg.client_id[:40]}-cmd-{secrets.token_hex(4)}")
    state = threading.Condition()
    acks: dict[int, int] = {}
    connect_rc: list[ReasonCode] = []

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        with state:
            connect_rc.append(rc)
            state.notify_all()

    def on_publish(_c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        with state:
            acks[mid] = rc.value
            state.notify_all()

    client.on_connect, client.on_publish = on_connect, on_publish
    where = f"MQTT broker {cfg.host}:{cfg.port}"
    try:
        client.connect(cfg.host, cfg.port, cfg.keepalive_s)
    except OSError as exc:
        raise CommandPublishError(f"cannot reach the {where}: {exc}") from None
    client.loop_start()
    try:
        with state:
            if not state.wait_for(lambda: connect_rc, timeout_s):
                raise CommandPublishError(f"no answer from the {where} within {timeout_s:g} s")
            if connect_rc[0].is_failure:
                raise CommandPublishError(f"the {where} refused the dashboard's login: {connect_rc[0]}")
        mids = {}
        for restaurant, agent, cmd in commands:
            topic = agent_topic(restaurant, agent, "command")
            mids[client.publish(topic, encode(cmd), qos=1).mid] = topic
        with state:
            if not state.wait_for(lambda: mids.keys() <= acks.keys(), timeout_s):
                raise CommandPublishError(f"the {where} did not acknowledge the commands in {timeout_s:g} s")
        refused = [
            f"{topic}: {ReasonCode(mqtt.PacketTypes.PUBACK, identifier=acks[mid])}"
            for mid, topic in mids.items()
            if acks[mid] >= 0x80
        ]
        if refused:
            raise CommandPublishError(f"the {where} refused: {'; '.join(refused)}")
    finally:
        client.disconnect()
        client.loop_stop()
