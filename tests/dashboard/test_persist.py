"""Persister details without the network: health messages, id clashes, migrations matching the models."""

from __future__ import annotations

from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import event as sa_event
from sqlalchemy import func, select

from brightkitchen.contract import (
    AvailabilityMessage,
    MediaMessage,
    StatsMessage,
    encode,
    topic_for,
    utc_now,
)
from dashboard.models import Agent, Base, Camera, DeadLetter, Event, Media


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


def _statements(sessions) -> list[str]:
    """Record every SQL statement the engine sends from now on."""
    seen: list[str] = []
    sa_event.listen(sessions.kw["bind"], "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def test_a_batch_is_stored_with_a_few_statements_whatever_its_size(
    persister, sessions, tenants, make_event, make_media
) -> None:
    """One upsert for the events, one insert for the media, a few lookups: not a round trip per message."""
    warm = [make_event(restaurant="r-a"), make_event(restaurant="r-b")]
    persister.handle_batch([(topic_for(w), encode(w)) for w in warm])  # registry lookups are cached now
    events = [make_event(restaurant=("r-a", "r-b")[i % 2]) for i in range(50)]
    items = [(topic_for(m), encode(m)) for ev in events for m in (ev, make_media(ev))]
    sent = _statements(sessions)
    results = persister.handle_batch(items)
    assert [r.outcome for r in results] == ["stored"] * 100
    assert len(sent) <= 8, sent
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Event)) == 52
        assert s.scalar(select(func.count()).select_from(Media)) == 50


def test_a_batch_keeps_each_messages_own_outcome(
    persister, sessions, tenants, make_event, make_media
) -> None:
    """An event's new/update/end in one batch end at the highest seq; a repeated media message, a bad
    payload, an unknown camera and an event id of another restaurant are each answered on their own."""
    ev = make_event(restaurant="r-a")
    update = make_event(restaurant="r-a", event_id=ev.event_id, seq=1, phase="update")
    end = make_event(restaurant="r-a", event_id=ev.event_id, seq=2, phase="end")
    stranger = make_event(restaurant="r-b")
    persister.handle(topic_for(stranger), encode(stranger))
    clash = make_event(restaurant="r-a", event_id=stranger.event_id, seq=9)
    unknown = make_event(restaurant="r-a", camera="cam-404")
    media = make_media(ev)
    items = [
        (topic_for(ev), encode(ev)),
        (topic_for(end), encode(end)),
        (topic_for(media), encode(media)),
        (topic_for(update), encode(update)),  # late: an older seq than the end in the same batch
        (topic_for(media), encode(media)),
        (topic_for(ev), b"{not json"),
        (topic_for(unknown), encode(unknown)),
        (topic_for(clash), encode(clash)),
    ]
    results = persister.handle_batch(items)
    assert [r.outcome for r in results] == ["stored"] * 3 + ["duplicate"] * 2 + ["rejected"] * 3
    assert [r.reason for r in results[5:]] == ["bad_json", "unknown_camera", "event_conflict"]
    with sessions() as s:
        assert (s.get(Event, ev.event_id).seq, s.get(Event, ev.event_id).phase) == (2, "end")
        assert s.get(Event, stranger.event_id).restaurant_id == "r-b"
        assert s.scalar(select(func.count()).select_from(Media)) == 1
        assert s.scalar(select(func.count()).select_from(DeadLetter)) == 3
    again = persister.handle_batch(items[:3])  # redelivered after a worker restart
    assert [r.outcome for r in again] == ["duplicate"] * 3


def test_one_event_id_under_two_restaurants_in_one_batch(persister, sessions, tenants, make_event) -> None:
    """The batch falls back to one message at a time: the first keeps the id, the second is refused."""
    ev = make_event(restaurant="r-a")
    spoof = make_event(restaurant="r-b", event_id=ev.event_id, seq=3)
    results = persister.handle_batch([(topic_for(ev), encode(ev)), (topic_for(spoof), encode(spoof))])
    assert [(r.outcome, r.reason) for r in results] == [("stored", ""), ("rejected", "event_conflict")]
    with sessions() as s:
        assert (s.get(Event, ev.event_id).restaurant_id, s.get(Event, ev.event_id).seq) == ("r-a", 0)
