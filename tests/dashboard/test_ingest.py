"""The ingest worker against a real Mosquitto, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import time
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from brightkitchen.contract import MAX_EVENT_BYTES, camera_topic, encode, topic_for
from dashboard.ingest import IngestWorker
from dashboard.media import FilesystemStore
from dashboard.models import DeadLetter, Event, Media


@pytest.fixture
def worker(start_worker, tenants: dict) -> IngestWorker:
    return start_worker()


def _count(sessions: sessionmaker[Session], model: type) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_valid_event_and_media_are_stored(
    worker, publisher, sessions, db_config, make_event, make_media, jpeg, wait_until
) -> None:
    ev = make_event()
    publisher.publish(topic_for(ev), encode(ev))
    publisher.publish(camera_topic("r-a", "cam-1", "media"), encode(make_media(ev)))
    wait_until(lambda: _count(sessions, Media) == 1 and _count(sessions, Event) == 1)
    with sessions() as s:
        row = s.get(Event, ev.event_id)
        assert (row.restaurant_id, row.camera.camera_id, row.rule, row.severity) == (
            "r-a",
            "cam-1",
            "board_misuse",
            "high",
        )
        assert row.started_at == ev.started_at and row.details["food"] == "raw_meat"
        assert row.detections[0]["box"]["x2"] == 0.4
        media = s.scalars(select(Media)).one()
    assert media.event_id == ev.event_id and len(media.id) >= 20
    assert FilesystemStore(db_config.media.path).get(media.storage_key) == jpeg


def test_bad_messages_are_dead_lettered_with_their_reason(
    worker, publisher, sessions, make_event, wait_until
) -> None:
    good = json.loads(encode(make_event()))
    topic = camera_topic("r-a", "cam-1", "event")
    cases = {
        "bad_json": (topic, b"{not json"),
        "unsupported_version": (topic, json.dumps({**good, "v": 2}).encode()),
        "too_large": (topic, b" " * (MAX_EVENT_BYTES + 1)),
        "invalid": (topic, json.dumps({**good, "score": 7}).encode()),
        "unknown_camera": (
            camera_topic("r-a", "cam-9", "event"),
            json.dumps({**good, "camera": "cam-9"}).encode(),
        ),
        "unknown_restaurant": (
            camera_topic("r-x", "cam-1", "event"),
            json.dumps({**good, "restaurant": "r-x"}).encode(),
        ),
        # restaurant B publishing an event that claims to be restaurant A's: spoofing
        "topic_mismatch": (camera_topic("r-b", "cam-1", "event"), json.dumps(good).encode()),
    }
    for t, payload in cases.values():
        publisher.publish(t, payload)
    wait_until(lambda: _count(sessions, DeadLetter) == len(cases))
    with sessions() as s:
        reasons = sorted(s.scalars(select(DeadLetter.reason)))
        too_large = s.scalars(select(DeadLetter).where(DeadLetter.reason == "too_large")).one()
    assert reasons == sorted(cases)
    assert too_large.payload_size == MAX_EVENT_BYTES + 1 and len(too_large.payload_head) == 4096
    assert _count(sessions, Event) == 0
    assert worker.counts["rejected"] == len(cases)
    # ... and the worker is still alive:
    ev = make_event()
    publisher.publish(topic_for(ev), encode(ev))
    wait_until(lambda: _count(sessions, Event) == 1)


def test_duplicates_and_stale_updates_change_nothing(
    worker, publisher, sessions, make_event, make_media, wait_until
) -> None:
    eid = uuid.uuid4()
    new, update = make_event(event_id=eid, seq=0), make_event(event_id=eid, seq=3, phase="update", score=0.95)
    media = make_media(new)
    for msg in (new, update, new, update, media, media):
        publisher.publish(topic_for(msg), encode(msg))
    wait_until(lambda: sum(worker.counts.values()) == 6)
    with sessions() as s:
        row = s.get(Event, eid)
        assert (row.seq, row.phase, row.score) == (3, "update", 0.95)
    assert _count(sessions, Event) == 1 and _count(sessions, Media) == 1
    assert worker.counts["duplicate"] == 3


def test_worker_restart_loses_nothing(
    start_worker, publisher, sessions, tenants, make_event, wait_until
) -> None:
    first = start_worker("ingest-restart")
    first.stop()  # the broker keeps the session and queues for it
    events = [make_event() for _ in range(40)]
    for ev in events:
        publisher.publish(topic_for(ev), encode(ev))
    again = start_worker("ingest-restart")
    wait_until(lambda: _count(sessions, Event) == len(events), timeout_s=20)
    assert again.counts["stored"] == len(events)


def test_two_workers_share_the_load(
    start_worker, publisher, sessions, tenants, make_event, wait_until
) -> None:
    workers = [start_worker(f"ingest-share-{i}") for i in range(2)]
    events = [make_event() for _ in range(40)]
    for ev in events:
        publisher.publish(topic_for(ev), encode(ev))
    wait_until(lambda: _count(sessions, Event) == len(events), timeout_s=20)
    assert all(w.counts["stored"] > 0 for w in workers)
    assert sum(w.counts["stored"] for w in workers) == len(events)


@pytest.mark.postgres
@pytest.mark.parametrize("db_config", ["postgres"], indirect=True)
def test_database_outage_loses_nothing(
    db_config, sessions, tenants, broker, publisher, tcp_proxy, make_event, wait_until
) -> None:
    """The worker reaches PostgreSQL through a proxy; while it is cut, messages stay unacknowledged at the
    broker side of the worker, and everything is stored once the database is back."""
    from sqlalchemy.engine import make_url

    from dashboard.config import MqttSection
    from dashboard.db import make_engine, make_sessionmaker
    from dashboard.media import FilesystemStore
    from dashboard.persist import Persister

    url = make_url(db_config.database_url)
    proxy = tcp_proxy((url.host, url.port or 5432))
    via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    engine = make_engine(via_proxy, db_config.database_schema)
    worker = IngestWorker(
        MqttSection(port=broker.port, client_id="ingest-outage", share_group="dash"),
        Persister(make_sessionmaker(engine), FilesystemStore(db_config.media.path)),
    )
    worker.start()
    try:
        wait_until(worker.connected.is_set)
        first = make_event()
        publisher.publish(topic_for(first), encode(first))
        wait_until(lambda: _count(sessions, Event) == 1)
        proxy.cut()
        during = [make_event() for _ in range(10)]
        for ev in during:
            publisher.publish(topic_for(ev), encode(ev))
        time.sleep(2.0)  # the worker retries against a dead database
        assert _count(sessions, Event) == 1
        proxy.start()
        wait_until(lambda: _count(sessions, Event) == 11, timeout_s=40)
        assert _count(sessions, DeadLetter) == 0
    finally:
        worker.stop()
        engine.dispose()


def test_housekeeping_runs_between_messages_and_its_failures_stop_nothing(
    broker, persister, publisher, sessions, tenants, make_event, wait_until
) -> None:
    from dashboard.config import MqttSection

    runs: list[float] = []

    def housekeeping() -> None:
        runs.append(time.monotonic())
        if len(runs) == 2:
            raise RuntimeError("database gone for a moment")

    worker = IngestWorker(
        MqttSection(port=broker.port, client_id="ingest-housekeeping"),
        persister,
        housekeeping=housekeeping,
        housekeeping_every_s=0.2,
    )
    worker.start()
    try:
        wait_until(lambda: len(runs) >= 4, timeout_s=10)
        ev = make_event()
        publisher.publish(topic_for(ev), encode(ev))
        wait_until(lambda: _count(sessions, Event) == 1)
        n = len(runs)
        wait_until(lambda: len(runs) >= n + 2, timeout_s=10)
    finally:
        worker.stop()
    gaps = [b - a for a, b in itertools.pairwise(runs)]
    assert min(gaps) >= 0.19 and max(gaps[:3]) < 2.0
