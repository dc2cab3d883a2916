"""Turn one received MQTT message into database rows and stored media — or a dead letter with its reason.

Replies, availability and stats also move model rollouts along (``dashboard.rollout``).

This is the ingest's logic without the network: ``Persister.handle(topic, payload)`` is what the MQTT
worker calls for every message, and what tests and benchmarks can call directly.
Database errors (a lost connection) and media-store failures (``StoreUnavailable``) propagate, so the
worker can leave the message unacknowledged and retry.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from brightkitchen.contract import (
    AvailabilityMessage,
    ContractError,
    EventMessage,
    MediaMessage,
    ReplyMessage,
    StatsMessage,
    decode,
)
from dashboard.media import EXTENSIONS, MediaStore
from dashboard.models import Agent, AgentReply, Camera, DeadLetter, Event, Media, Restaurant, now_utc
from dashboard.rollout import observe_model, observe_reply

log = logging.getLogger(__name__)

DEAD_LETTER_HEAD_BYTES = 4096
REGISTRY_CACHE_S = 30.0  # how long a registered restaurant/camera is trusted without asking the database
Outcome = Literal["stored", "duplicate", "rejected"]


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    reason: str = ""


class Rejected(Exception):
    """A well-formed message the dashboard still refuses (unknown restaurant or camera, id clash)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class _Redo(Exception):
    """A batch that must be stored message by message."""


class StoreUnavailable(Exception):
    """The media store refused a write (disk full, S3 down): retry later, never dead-letter."""


def _event_row(msg: EventMessage, camera_pk: int, now: datetime) -> dict[str, Any]:
    return {
        "id": msg.event_id,
        "received_at": now,
        "restaurant_id": msg.restaurant,
        "camera_pk": camera_pk,
        "agent_id": msg.agent,
        "seq": msg.seq,
        "phase": msg.phase,
        "rule": msg.rule,
        "rule_name": msg.rule_name,
        "severity": msg.severity,
        "started_at": msg.started_at,
        "ended_at": msg.ended_at,
        "sent_at": msg.sent_at,
        "score": msg.score,
        "detections": [d.model_dump(mode="json") for d in msg.detections],
        "details": dict(msg.details),
        "frame_width": msg.frame.width,
        "frame_height": msg.frame.height,
        "model_name": msg.model.name,
        "model_version": msg.model.version,
        "media_refs": [m.model_dump(mode="json") for m in msg.media],
        "updated_at": now,
    }


def new_media_id() -> str:
    """An unguessable id for a media file (128 random bits)."""
    return secrets.token_urlsafe(16)


class Persister:
    """Validates messages with the contract and writes them; one instance per worker."""

    def __init__(self, sessions: sessionmaker[Session], store: MediaStore) -> None:
        self.sessions = sessions
        self.store = store
        # Registered restaurants and cameras change rarely: remember positive lookups for a while.
        self._known: dict[tuple[str, str | None], tuple[float, int]] = {}

    def handle_batch(self, items: list[tuple[str, bytes]]) -> list[Result]:
        """Store several messages in one transaction with a handful of statements for the whole batch
        (one upsert for its events, one query and one insert for its media), not a few per message.

        If two workers race on the same row, or one batch holds an event id under two cameras, the batch
        is redone message by message.
        """
        try:
            return self._store(items)
        except (IntegrityError, _Redo):
            return [self.handle(topic, payload) for topic, payload in items]

    def handle(self, topic: str, payload: bytes) -> Result:
        """Store one message; never raises for a bad message, only for database trouble."""
        for attempt in (1, 2):
            try:
                return self._store([(topic, payload)])[0]
            except IntegrityError:
                # Another worker inserted the same agent/media row at the same moment: retry once.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _store(self, items: list[tuple[str, bytes]]) -> list[Result]:
        results: dict[int, Result] = {}
        events: list[tuple[int, EventMessage, int]] = []
        media: list[tuple[int, MediaMessage]] = []
        with self.sessions.begin() as session:

            def refuse(i: int, exc: ContractError | Rejected) -> None:
                topic, payload = items[i]
                results[i] = self._dead_letter(session, topic, payload, exc.reason, exc.detail)

            for i, (topic, payload) in enumerate(items):
                try:
                    msg = decode(topic, payload)
                    if self._lookup(session, msg.restaurant, None) is None:
                        raise Rejected(
                            "unknown_restaurant", f"restaurant {msg.restaurant!r} is not registered"
                        )
                    if isinstance(msg, EventMessage):
                        events.append((i, msg, self._camera(session, msg.restaurant, msg.camera)))
                    elif isinstance(msg, MediaMessage):
                        self._camera(session, msg.restaurant, msg.camera)
                        media.append((i, msg))
                    else:  # health and replies are rare: one by one, in arrival order
                        results[i] = self._apply(session, msg)
                except (ContractError, Rejected) as exc:
                    refuse(i, exc)
            outcomes = self._events(session, events)
            outcomes |= self._media(session, media)  # after the events: media check their owners
            for i, outcome in outcomes.items():
                if isinstance(outcome, Rejected):
                    refuse(i, outcome)
                else:
                    results[i] = outcome
        return [results[i] for i in range(len(items))]

    def reject(self, topic: str, payload: bytes, reason: str, detail: str) -> Result:
        """Record a refused message in the dead-letter table."""
        with self.sessions.begin() as session:
            return self._dead_letter(session, topic, payload, reason, detail)

    @staticmethod
    def _dead_letter(session: Session, topic: str, payload: bytes, reason: str, detail: str) -> Result:
        log.warning("rejected message on %s: %s: %s", topic, reason, detail[:300])
        session.add(
            DeadLetter(
                topic=topic[:300],
                reason=reason,
                detail=detail[:4000],
                payload_size=len(payload),
                payload_head=payload[:DEAD_LETTER_HEAD_BYTES],
            )
        )
        return Result("rejected", reason)

    def _lookup(self, session: Session, restaurant: str, camera: str | None) -> int | None:
        """The camera's primary key (or 0 for a restaurant), from a short-lived cache or the database."""
        key = (restaurant, camera)
        hit = self._known.get(key)
        if hit is not None and time.monotonic() - hit[0] < REGISTRY_CACHE_S:
            return hit[1]
        if camera is None:
            found = 0 if session.get(Restaurant, restaurant) is not None else None
        else:
            found = session.scalar(
                select(Camera.id).where(Camera.restaurant_id == restaurant, Camera.camera_id == camera)
            )
        if found is not None:
            self._known[key] = (time.monotonic(), found)
        return found

    def _apply(self, session: Session, msg: Any) -> Result:
        """Health messages and replies."""
        if isinstance(msg, AvailabilityMessage):
            return self._availability(session, msg)
        if isinstance(msg, StatsMessage):
            return self._stats(session, msg)
        if isinstance(msg, ReplyMessage):
            session.add(
                AgentReply(
                    command_id=msg.command_id,
                    restaurant_id=msg.restaurant,
                    agent_id=msg.agent,
                    ok=msg.ok,
                    message=msg.message,
                    at=msg.at,
                )
            )
            observe_reply(session, msg)
            return Result("stored")
        raise Rejected("unexpected_type", f"{msg.type} messages are not for the dashboard")

    def _camera(self, session: Session, restaurant: str, camera: str) -> int:
        pk = self._lookup(session, restaurant, camera)
        if pk is None:
            raise Rejected("unknown_camera", f"camera {camera!r} of {restaurant!r} is not registered")
        return pk

    @functools.cache  # noqa: B019 - two dialects at most, for the life of the worker
    def _upsert_statement(self, dialect: str) -> Any:
        """INSERT ... ON CONFLICT (id) DO UPDATE only for a higher seq of the same restaurant and camera,
        RETURNING id; built once so SQLAlchemy's compiled cache is hit."""
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = Event.__table__
        stmt = insert(table)
        kept = {"id", "received_at", "verdict", "reviewed_at", "responded_at"}
        return stmt.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={c.name: stmt.excluded[c.name] for c in table.c if c.name not in kept},
            where=(table.c.seq < stmt.excluded.seq)
            & (table.c.restaurant_id == stmt.excluded.restaurant_id)
            & (table.c.camera_pk == stmt.excluded.camera_pk),
        ).returning(table.c.id)

    def _events(
        self, session: Session, events: list[tuple[int, EventMessage, int]]
    ) -> dict[int, Result | Rejected]:
        """Upsert a batch's events in one statement (a row once per statement: each event's highest
        ``seq``); each message is answered as if the batch had been stored one message at a time."""
        latest: dict[uuid.UUID, tuple[EventMessage, int]] = {}
        for _i, msg, camera_pk in events:
            kept = latest.get(msg.event_id)
            if kept is not None and (kept[0].restaurant, kept[1]) != (msg.restaurant, camera_pk):
                raise _Redo  # one id under two cameras in one batch: let the slow path sort it out
            if kept is None or msg.seq > kept[0].seq:
                latest[msg.event_id] = (msg, camera_pk)
        if not latest:
            return {}
        now = now_utc()
        rows = [_event_row(msg, camera_pk, now) for msg, camera_pk in latest.values()]
        stored = set(session.scalars(self._upsert_statement(session.bind.dialect.name), rows))
        outcome: dict[uuid.UUID, Result | Rejected] = dict.fromkeys(stored, Result("stored"))
        others = [event_id for event_id in latest if event_id not in stored]
        if others:
            owners = session.execute(
                select(Event.id, Event.restaurant_id, Event.camera_pk).where(Event.id.in_(others))
            )
            for event_id, restaurant, camera_pk in owners:
                msg, pk = latest[event_id]
                outcome[event_id] = (
                    Result("duplicate")  # an older or repeated seq of our own event
                    if (restaurant, camera_pk) == (msg.restaurant, pk)
                    else Rejected(
                        "event_conflict", f"event {event_id} belongs to another restaurant or camera"
                    )
                )
        results: dict[int, Result | Rejected] = {}
        running: dict[uuid.UUID, int] = {}  # as if stored one by one: a seq not above an earlier one repeats
        for i, msg, _pk in events:
            final = outcome[msg.event_id]
            if isinstance(final, Result) and running.get(msg.event_id, -1) >= msg.seq:
                results[i] = Result("duplicate")
            else:
                results[i] = final
                running[msg.event_id] = msg.seq
        return results

    def _media(self, session: Session, media: list[tuple[int, MediaMessage]]) -> dict[int, Result | Rejected]:
        """Write a batch's new media files and insert their rows together; one query finds duplicates and
        the owners of their events (media may arrive before the event)."""
        if not media:
            return {}
        ids = {msg.event_id for _i, msg in media}
        owners = dict(session.execute(select(Event.id, Event.restaurant_id).where(Event.id.in_(ids))).all())
        seen = set(session.execute(select(Media.event_id, Media.sha256).where(Media.event_id.in_(ids))).all())
        out: dict[int, Result | Rejected] = {}
        for i, msg in media:
            owner = owners.get(msg.event_id)
            if owner is not None and owner != msg.restaurant:
                out[i] = Rejected("event_conflict", f"event {msg.event_id} belongs to another restaurant")
                continue
            if (msg.event_id, msg.sha256) in seen:
                out[i] = Result("duplicate")
                continue
            seen.add((msg.event_id, msg.sha256))
            key = (
                f"{msg.restaurant}/{msg.event_id}/{msg.kind}-{msg.sha256[:16]}.{EXTENSIONS[msg.content_type]}"
            )
            blob = msg.blob()
            try:
                self.store.put(key, blob, msg.content_type)
            except Exception as exc:
                raise StoreUnavailable(f"media store write of {key} failed: {exc}") from exc
            session.add(
                Media(
                    id=new_media_id(),
                    event_id=msg.event_id,
                    restaurant_id=msg.restaurant,
                    kind=msg.kind,
                    content_type=msg.content_type,
                    sha256=msg.sha256,
                    size_bytes=len(blob),
                    storage_key=key,
                    captured_at=msg.captured_at,
                )
            )
            out[i] = Result("stored")
        return out

    @staticmethod
    def _agent(session: Session, restaurant: str, agent_id: str) -> Agent:
        agent = session.scalar(
            select(Agent).where(Agent.restaurant_id == restaurant, Agent.agent_id == agent_id)
        )
        if agent is None:
            agent = Agent(restaurant_id=restaurant, agent_id=agent_id)
            session.add(agent)
            session.flush()
        return agent

    def _availability(self, session: Session, msg: AvailabilityMessage) -> Result:
        agent = self._agent(session, msg.restaurant, msg.agent)
        at: datetime = msg.at or now_utc()
        if agent.status_at is not None and msg.at is not None and msg.at < agent.status_at:
            return Result("duplicate")  # an older retained message
        agent.status, agent.status_at = msg.status, at
        if msg.status == "online":
            agent.last_seen_at = now_utc()
        if msg.software_version:
            agent.software_version = msg.software_version
        if msg.model:
            agent.model_name, agent.model_version = msg.model.name, msg.model.version
        if msg.status == "online":
            observe_model(session, msg.restaurant, msg.agent, msg.model, msg.at)
        if msg.status == "offline":
            for cam in session.scalars(
                select(Camera).where(Camera.restaurant_id == msg.restaurant, Camera.agent_id == msg.agent)
            ):
                cam.online = False
        return Result("stored")

    def _stats(self, session: Session, msg: StatsMessage) -> Result:
        agent = self._agent(session, msg.restaurant, msg.agent)
        agent.last_seen_at = now_utc()
        agent.outbox_depth, agent.outbox_bytes = msg.outbox_depth, msg.outbox_bytes
        if msg.model:
            agent.model_name, agent.model_version = msg.model.name, msg.model.version
        errors = [f"{c.camera}: {c.error}" for c in msg.cameras if c.error]
        observe_model(session, msg.restaurant, msg.agent, msg.model, msg.at, errors)
        if agent.status != "online":
            agent.status, agent.status_at = "online", msg.at
        cams = {
            c.camera_id: c
            for c in session.scalars(select(Camera).where(Camera.restaurant_id == msg.restaurant))
        }
        for stats in msg.cameras:
            cam = cams.get(stats.camera)
            if cam is None:
                log.info("stats for unregistered camera %s/%s ignored", msg.restaurant, stats.camera)
                continue
            cam.agent_id = msg.agent
            cam.online, cam.fps, cam.inference_ms = stats.online, stats.fps, stats.inference_ms
            cam.frames_processed, cam.frames_skipped = stats.frames_processed, stats.frames_skipped
            cam.last_frame_at, cam.error, cam.last_stats_at = stats.last_frame_at, stats.error, msg.at
        return Result("stored")
