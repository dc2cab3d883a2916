"""The agent's MQTT link: paho-mqtt 2.x, MQTT 5, TLS and username/password, draining the outbox at QoS 1.

Delivery is tracked by ``on_publish(mid)`` (paho's ``wait_for_publish`` raises while offline): the pump
thread publishes each outbox row once per process, keeps ``mid → row``, and deletes the row when its
PUBACK arrives. Across a lost connection paho itself resends the unacked ones (DUP flag), so rows in flight
are not published again; rows still unacked when the process dies are resent after restart. A PUBACK
with a permanent refusal (Not authorized, topic invalid, too large) drops the row with an error in the log,
so that one bad message cannot block the queue.

Availability is retained: ``online`` on every connect, ``offline`` as the last will and on a clean stop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from brightkitchen.broker import apply_login
from brightkitchen.contract import (
    AvailabilityMessage,
    CommandMessage,
    ContractError,
    ModelRef,
    agent_topic,
    decode,
    encode,
    utc_now,
)
from edge_agent.config import EdgeConfig
from edge_agent.outbox import Outbox

log = logging.getLogger(__name__)
INFLIGHT_WINDOW = 20
PERMANENT_REFUSALS = {0x87, 0x90, 0x95, 0x99}  # not authorized, topic invalid, packet too large, bad payload


class MqttLink:
    """Owns the paho client and the pump thread; ``start()``, then ``stop()``."""

    def __init__(
        self,
        cfg: EdgeConfig,
        outbox: Outbox,
        on_command: Callable[[CommandMessage], None],
        describe: Callable[[], tuple[list[str], ModelRef | None]],
        software_version: str,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.on_command = on_command
        self.describe = describe  # cameras and model for the availability message
        self.software_version = software_version
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._restaurant, self._agent = cfg.agent.restaurant, cfg.agent.id
        self._avail_topic = agent_topic(self._restaurant, self._agent, "availability")
        self._command_topic = agent_topic(self._restaurant, self._agent, "command")
        self._acks: queue.Queue[tuple[int, int]] = queue.Queue()
        self._inflight: dict[int, int] = {}  # mid → outbox row id
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pump: threading.Thread | None = None
        self.client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        m = self.cfg.mqtt
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{self._restaurant}.{self._agent}",
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=True,
        )
        apply_login(client, m)
        will = AvailabilityMessage(restaurant=self._restaurant, agent=self._agent, status="offline")
        client.will_set(self._avail_topic, encode(will), qos=1, retain=True)
        client.reconnect_delay_set(
            min_delay=max(1, round(m.reconnect_min_s)), max_delay=round(m.reconnect_max_s)
        )
        client.max_inflight_messages_set(INFLIGHT_WINDOW)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> None:
        m = self.cfg.mqtt
        log.info(
            "connecting to MQTT broker %s:%d as %s (TLS %s)",
            m.host,
            m.port,
            m.username,
            "on" if m.tls else "off",
        )
        self.client.connect_async(m.host, m.port, keepalive=m.keepalive_s)
        self.client.loop_start()
        self._pump = threading.Thread(target=self._pump_loop, name="mqtt-pump", daemon=True)
        self._pump.start()

    def stop(self, drain_s: float = 0.0, last_words: tuple[str, bytes] | None = None) -> None:
        """Wait up to ``drain_s`` for the outbox to empty (even through a reconnect), then go offline.

        ``last_words`` (topic, payload), e.g. the final stats, is sent just before ``offline`` if connected.
        """
        end = time.monotonic() + drain_s
        while self.outbox.depth()[0] and time.monotonic() < end:
            time.sleep(0.1)
        self._stop.set()
        self._wake.set()
        if self._pump is not None:
            self._pump.join(timeout=5)
        if self.connected.is_set():
            msg = AvailabilityMessage(
                restaurant=self._restaurant, agent=self._agent, status="offline", at=utc_now()
            )
            goodbye = [(*last_words, False)] if last_words is not None else []
            goodbye.append((self._avail_topic, encode(msg), True))
            try:
                for topic, payload, retain in goodbye:
                    self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(2)
            except (RuntimeError, ValueError) as exc:  # the broker went away while we were stopping
                log.warning("could not say goodbye to the broker (%s); its last will says offline", exc)
        self.client.disconnect()
        self.client.loop_stop()

    def notify(self) -> None:
        """New rows in the outbox: wake the pump."""
        self._wake.set()

    def announce(self) -> bool:
        """Publish ``online`` with the current cameras and model again (after a model change)."""
        return self.publish_now(self._avail_topic, encode(self._online()), qos=1, retain=True)

    def _online(self) -> AvailabilityMessage:
        cameras, model = self.describe()
        return AvailabilityMessage(
            restaurant=self._restaurant,
            agent=self._agent,
            status="online",
            at=utc_now(),
            software_version=self.software_version,
            model=model,
            cameras=cameras,
        )

    def publish_now(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> bool:
        """Send outside the outbox (stats): only while connected, no retry."""
        if not self.connected.is_set():
            return False
        return self.client.publish(topic, payload, qos=qos, retain=retain).rc == mqtt.MQTT_ERR_SUCCESS

    # --- paho callbacks (network thread) -------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        if rc.is_failure:
            self.last_error = f"broker refused the connection: {rc}"
            log.error("MQTT: %s", self.last_error)
            return
        self.last_error = None
        client.publish(self._avail_topic, encode(self._online()), qos=1, retain=True)
        client.subscribe(self._command_topic, qos=1)
        self.connected.set()
        self._wake.set()
        log.info("MQTT connected; %d messages waiting in the outbox", self.outbox.depth()[0])

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        if self.connected.is_set():
            log.warning("MQTT disconnected (%s); outbox keeps what is not acked, paho reconnects", rc)
        self.connected.clear()

    def _on_publish(self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: Properties) -> None:
        # Called under paho's own lock: hand over to the pump thread, touch nothing else here.
        self._acks.put((mid, rc.value))
        self._wake.set()

    def _on_message(self, _c: mqtt.Client, _u: object, message: mqtt.MQTTMessage) -> None:
        try:
            cmd = decode(message.topic, message.payload)
        except ContractError as exc:
            log.warning("ignoring message on %s: %s", message.topic, exc)
            return
        if isinstance(cmd, CommandMessage):
            log.info("command %s: %s", cmd.command_id, cmd.action)
            threading.Thread(target=self.on_command, args=(cmd,), name="command", daemon=True).start()

    # --- the pump ------------------------------------------------------------------------------------

    def _pump_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            self._handle_acks()
            if not self.connected.is_set():
                continue
            room = INFLIGHT_WINDOW - len(self._inflight)
            if room <= 0:
                continue
            for row in self.outbox.pending(room, exclude=set(self._inflight.values())):
                info = self.client.publish(row.topic, row.payload, qos=1)
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    log.warning(
                        "MQTT publish of %s failed (%s); will retry", row.msg_id, mqtt.error_string(info.rc)
                    )
                    break
                # Even with NO_CONN paho keeps a QoS 1 message queued and sends it on reconnect.
                self._inflight[info.mid] = row.id
                log.debug("published %s (mid %d)", row.msg_id, info.mid)

    def _handle_acks(self) -> None:
        while True:
            try:
                mid, code = self._acks.get_nowait()
            except queue.Empty:
                return
            row_id = self._inflight.pop(mid, None)
            if row_id is None:
                continue
            if code >= 0x80 and code not in PERMANENT_REFUSALS:
                log.warning("broker answered mid %d with reason 0x%02x; will resend", mid, code)
                continue
            if code >= 0x80:
                log.error(
                    "broker refused outbox row %d with reason 0x%02x (%s); dropped",
                    row_id,
                    code,
                    ReasonCode(mqtt.PacketTypes.PUBACK, identifier=code),
                )
            self.outbox.ack(row_id)
