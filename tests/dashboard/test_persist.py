"""Persister details without the network: health messages, id clashes, migrations matching the models."""

from __future__ import annotations

from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from brightkitchen.contract import (
    AvailabilityMessage,
    MediaMessage,
    StatsMessage,
    encode,
    topic_for,
    utc_now,
)
from dashboard.models import Agent, Base, Camera, DeadLetter, Event


def test_availability_and_stats_update_health(persister, sessions, tenants) -> None:
    now = utc_now()
    online = AvailabilityMessage(
        restaurant="r-a",
        agent="box-1",
        status="online",
        at=now,
        software_version="0.3.0",
        model={"name": "bk", "version": "1.2.0"},
        cameras=["cam-1"],
    )
    stats = StatsMessage(
        restaurant="r-a",
        agent="box-1",
        at=now,
        interval_s=10,
        outbox_depth=3,
        outbox_bytes=900,
        cameras=[
            {
                "camera": "cam-1",
                "online": True,
                "fps": 14.5,
                "inference_ms": 21.0,
                "frames_processed": 100,
                "frames_skipped": 40,
                "last_frame_at": now,
            },
            {
                "camera": "cam-unknown",
                "online": True,
                "fps": 1,
                "inference_ms": 1,
                "frames_processed": 1,
                "frames_skipped": 0,
            },
        ],
    )
    for msg in (online, stats):
        assert persister.handle(topic_for(msg), encode(msg)).outcome == "stored"
    stale = AvailabilityMessage(
        restaurant="r-a", agent="box-1", status="offline", at=now - timedelta(minutes=5)
    )
    assert persister.handle(topic_for(stale), encode(stale)).outcome == "duplicate"  # older retained message
    with sessions() as s:
        agent = s.scalars(select(Agent)).one()
        cam = s.scalars(select(Camera).where(Camera.restaurant_id == "r-a")).one()
    assert (agent.status, agent.software_version, agent.model_version, agent.outbox_depth) == (
        "online",
        "0.3.0",
        "1.2.0",
        3,
    )
    assert (cam.online, cam.fps, cam.agent_id, cam.last_frame_at) == (True, 14.5, "box-1", now)
    will = AvailabilityMessage(restaurant="r-a", agent="box-1", status="offline")  # last will: no time
    persister.handle(topic_for(will), encode(will))
    with sessions() as s:
        assert s.scalars(select(Agent.status)).one() == "offline"
        assert s.scalars(select(Camera.online).where(Camera.restaurant_id == "r-a")).one() is False


def test_event_id_of_another_restaurant_is_refused(
    persister, sessions, tenants, make_event, make_media
) -> None:
    ev = make_event(restaurant="r-a")
    persister.handle(topic_for(ev), encode(ev))
    clash = make_event(restaurant="r-b", event_id=ev.event_id, seq=5)
    assert persister.handle(topic_for(clash), encode(clash)).reason == "event_conflict"
    media = make_media(clash)
    assert persister.handle(topic_for(media), encode(media)).reason == "event_conflict"
    with sessions() as s:
        assert s.get(Event, ev.event_id).seq == 0
        assert (
            s.scalar(select(DeadLetter.reason).where(DeadLetter.topic == topic_for(media)))
            == "event_conflict"
        )


def test_media_before_its_event_is_kept(persister, sessions, tenants, make_event, make_media) -> None:
    ev = make_event()
    media: MediaMessage = make_media(ev)
    assert persister.handle(topic_for(media), encode(media)).outcome == "stored"
    assert persister.handle(topic_for(ev), encode(ev)).outcome == "stored"


def test_migrations_match_the_models(sessions) -> None:
    """Alembic's autogenerate finds nothing to add: the shipped migrations were generated from models.py."""
    with sessions.kw["bind"].connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
