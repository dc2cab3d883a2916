"""The ingest worker: an MQTT 5 subscriber that hands every message to ``Persister``.

Delivery is at least once and nothing is lost across restarts: the session is persistent
(``clean_start=False`` with a session expiry, stable client id), subscriptions are QoS 1, and a message
is acknowledged only after it is stored or dead-lettered. Several workers with the same ``share_group``
and different client ids split the load through the broker's shared subscription. Between messages, and
at least every ``housekeeping_every_s``, the processing thread runs ``housekeeping`` (giving up on rollout
agents that stopped answering, see ``dashboard.deploy.expire_overdue_rollouts``).

Example::

    worker = IngestWorker(cfg.mqtt, persister)
    worker.start(); ...; worker.stop()
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from sqlalchemy.exc import OperationalError

from brightkitchen.broker import apply_login
from brightkitchen.contract import subscriptions
from dashboard.config import MqttSection
from dashboard.persist import Persister, StoreUnavailable

log = logging.getLogger(__name__)

RECEIVE_MAXIMUM = 500  # unacknowledged messages the broker may have in flight to us
ATTEMPTS_BEFORE_DEAD_LETTER = 3
RETRYABLE = (OperationalError, StoreUnavailable)  # outages: keep the message unacknowledged and retry
BATCH_MAX = 100  # messages stored per transaction when they queue up


@dataclass(frozen=True)
class _Item:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes


def _first_line(exc: Exception) -> str:
    return f"{exc.__class__.__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def make_client(cfg: MqttSection, client_id: str | None = None) -> mqtt.Client:
    """A paho MQTT 5 client with credentials and TLS from the config, not yet connected."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or cfg.client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=True,
    )
    apply_login(client, cfg)
    client.reconnect_delay_set(1, 30)
    return client


class IngestWorker:
    """Subscribes, queues messages to one processing thread, acknowledges after storing."""

    def __init__(
        self,
        cfg: MqttSection,
        persister: Persister,
        client_id: str | None = None,
        housekeeping: Callable[[], object] | None = None,
        housekeeping_every_s: float = 60.0,
    ) -> None:
        self.cfg = cfg
        self.persister = persister
        self.housekeeping = housekeeping
        self.housekeeping_every_s = housekeeping_every_s
        self._housekeeping_due = time.monotonic()
        self.client = make_client(cfg, client_id)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.counts: Counter[str] = Counter()
        self.connected = threading.Event()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._generation = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._process_loop, name="ingest-store", daemon=True)

    # -- lifecycle
    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.cfg.session_expiry_s
        props.ReceiveMaximum = RECEIVE_MAXIMUM
        self._thread.start()
        self.client.connect_async(
            self.cfg.host, self.cfg.port, self.cfg.keepalive_s, clean_start=False, properties=props
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Finish the message in hand, then disconnect (the broker keeps the session for the rest)."""
        self._stopping.set()
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.client.disconnect()
        self.client.loop_stop()

    def run_forever(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    # -- network thread
    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, props: object) -> None:
        if getattr(reason, "is_failure", False):
            log.error("broker refused the connection: %s", reason)
            return
        self._generation += 1  # unacknowledged messages of the old connection will be redelivered
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        if self._stopping.is_set():
            self._queue.put(None)
        filters = subscriptions(self.cfg.share_group)
        client.subscribe([(f, SubscribeOptions(qos=1)) for f in filters])
        log.info("connected to %s:%s, subscribed to %d filters", self.cfg.host, self.cfg.port, len(filters))
        self.connected.set()

    def _on_disconnect(self, _c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        self.connected.clear()
        if not self._stopping.is_set():
            log.warning("disconnected from broker (%s); reconnecting", reason)

    def _on_message(self, _c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        self._queue.put(
            _Item(self._generation, message.mid, message.qos, message.topic, bytes(message.payload))
        )

    # -- processing thread
    def _process_loop(self) -> None:
        """Take what has queued up (up to ``BATCH_MAX``), store it in one transaction, then acknowledge."""
        stop = False
        while not stop:
            wait_s = self._maybe_housekeep()
            try:
                item = self._queue.get(timeout=wait_s)
            except queue.Empty:
                continue
            if item is None:
                return
            batch = [item]
            while len(batch) < BATCH_MAX:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            for done in self._store_batch(batch):
                if done.qos > 0 and done.generation == self._generation:
                    self.client.ack(done.mid, done.qos)

    def _maybe_housekeep(self) -> float | None:
        """Run the housekeeping if it is due; how long to wait for a message before it is due again."""
        if self.housekeeping is None:
            return None
        if time.monotonic() >= self._housekeeping_due:
            self._housekeeping_due = time.monotonic() + self.housekeeping_every_s
            try:
                self.housekeeping()
            except Exception:  # the database or broker is down: next time
                log.exception("housekeeping failed; trying again in %.0f s", self.housekeeping_every_s)
        return max(0.0, self._housekeeping_due - time.monotonic())

    def _store_batch(self, batch: list[_Item]) -> list[_Item]:
        """Store a batch; returns the items that may be acknowledged."""
        delay_s = 0.5
        while True:
            try:
                results = self.persister.handle_batch([(i.topic, i.payload) for i in batch])
                self.counts.update(r.outcome for r in results)
                return batch
            except RETRYABLE as exc:
                if self._stopping.is_set():
                    return []
                log.warning("storage unavailable (%s); retrying in %.1f s", _first_line(exc), delay_s)
                time.sleep(delay_s)
                delay_s = min(delay_s * 2, 30.0)
            except Exception:
                log.exception("storing a batch of %d failed; storing one by one", len(batch))
                return [i for i in batch if self._store(i)]

    def _store(self, item: _Item) -> bool:
        """Store or dead-letter one message; False if the database stayed unreachable (do not ack)."""
        delay_s = 0.5
        attempt = 0
        while not self._stopping.is_set() or attempt == 0:
            attempt += 1
            try:
                result = self.persister.handle(item.topic, item.payload)
                self.counts[result.outcome] += 1
                return True
            except RETRYABLE as exc:
                log.warning("storage unavailable (%s); retrying in %.1f s", _first_line(exc), delay_s)
            except Exception as exc:
                if attempt >= ATTEMPTS_BEFORE_DEAD_LETTER:
                    return self._give_up(item, exc)
                log.exception("storing a message on %s failed (attempt %d)", item.topic, attempt)
            time.sleep(delay_s)
            delay_s = min(delay_s * 2, 30.0)
        return False

    def _give_up(self, item: _Item, exc: Exception) -> bool:
        try:
            self.persister.reject(item.topic, item.payload, "internal_error", repr(exc))
        except Exception:
            log.exception("could not dead-letter a message on %s", item.topic)
            return False
        self.counts["rejected"] += 1
        return True
