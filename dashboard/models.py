"""The dashboard's database: every table, in one module (Alembic migrations are generated from it)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("admin", "inspector", "restaurant", "ml")


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC; PostgreSQL timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def now_utc() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Restaurant(Base):
    __tablename__ = "restaurants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, doc="contract id, also the MQTT user")
    name: Mapped[str] = mapped_column(String(200))
    district: Mapped[str] = mapped_column(String(100), index=True)
    address: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    cameras: Mapped[list[Camera]] = relationship(back_populates="restaurant", order_by="Camera.camera_id")


class Camera(Base):
    __tablename__ = "cameras"
    __table_args__ = (UniqueConstraint("restaurant_id", "camera_id", name="uq_cameras_restaurant_camera"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    restaurant_id: Mapped[str] = mapped_column(ForeignKey("restaurants.id"))
    camera_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    # Health, from the agents' stats messages.
    agent_id: Mapped[str | None] = mapped_column(String(64))
    online: Mapped[bool | None]
    fps: Mapped[float | None] = mapped_column(Float)
    inference_ms: Mapped[float | None] = mapped_column(Float)
    frames_processed: Mapped[int | None]
    frames_skipped: Mapped[int | None]
    last_frame_at: Mapped[datetime | None]
    last_stats_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(500))

    restaurant: Mapped[Restaurant] = relationship(back_populates="cameras")


class Agent(Base):
    """An edge box, known from its availability and stats messages."""

    __tablename__ = "agents"
    __table_args__ = (UniqueConstraint("restaurant_id", "agent_id", name="uq_agents_restaurant_agent"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    restaurant_id: Mapped[str] = mapped_column(ForeignKey("restaurants.id"))
    agent_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    status_at: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    software_version: Mapped[str | None] = mapped_column(String(32))
    model_name: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(32))
    outbox_depth: Mapped[int | None]
    outbox_bytes: Mapped[int | None]


class Event(Base):
    """An alert: the latest state (highest ``seq``) of one violation episode."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_queue", "verdict", "started_at"),
        Index("ix_events_restaurant_started", "restaurant_id", "started_at"),
        # Counting a tenant's unreviewed alerts without touching the table.
        Index("ix_events_restaurant_verdict", "restaurant_id", "verdict", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, doc="the contract's event_id")
    restaurant_id: Mapped[str] = mapped_column(ForeignKey("restaurants.id"))
    camera_pk: Mapped[int] = mapped_column(ForeignKey("cameras.id"), index=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int]
    phase: Mapped[str] = mapped_column(String(8))
    rule: Mapped[str] = mapped_column(String(48), index=True)
    rule_name: Mapped[str | None] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8), index=True)
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    sent_at: Mapped[datetime]
    score: Mapped[float] = mapped_column(Float)
    detections: Mapped[list[Any]]
    details: Mapped[dict[str, Any]]
    frame_width: Mapped[int]
    frame_height: Mapped[int]
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32), index=True)
    media_refs: Mapped[list[Any]]
    received_at: Mapped[datetime] = mapped_column(default=now_utc, index=True, doc="first message seen")
    updated_at: Mapped[datetime] = mapped_column(default=now_utc)
    # Review state, denormalised from ``reviews`` for the queue.
    verdict: Mapped[str | None] = mapped_column(String(16))
    reviewed_at: Mapped[datetime | None]
    responded_at: Mapped[datetime | None]

    restaurant: Mapped[Restaurant] = relationship()
    camera: Mapped[Camera] = relationship()


class Media(Base):
    """A stored file: an event's snapshot or clip, or a rectification photo. ``id`` is unguessable."""

    __tablename__ = "media"
    __table_args__ = (UniqueConstraint("event_id", "sha256", name="uq_media_event_sha256"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True, doc="no FK: media may precede the event")
    restaurant_id: Mapped[str] = mapped_column(ForeignKey("restaurants.id"))
    kind: Mapped[str] = mapped_column(String(16), doc="snapshot, snapshot_clean, clip or response_photo")
    content_type: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int]
    storage_key: Mapped[str] = mapped_column(String(300))
    captured_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=now_utc)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), doc="admin, inspector, restaurant or ml")
    restaurant_id: Mapped[str | None] = mapped_column(ForeignKey("restaurants.id"))
    districts: Mapped[list[Any]] = mapped_column(default=list, doc="inspector: the districts they may see")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)


class ApiToken(Base):
    """A bearer token for integrations; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    last_used_at: Mapped[datetime | None]
    revoked: Mapped[bool] = mapped_column(default=False)

    user: Mapped[User] = relationship()


class Review(Base):
    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    user: Mapped[User] = relationship()


class Response(Base):
    """A restaurant's answer to an alert: what it rectified, with an optional photo."""

    __tablename__ = "responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("events.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    note: Mapped[str] = mapped_column(Text)
    photo_media_id: Mapped[str | None] = mapped_column(ForeignKey("media.id"))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)

    user: Mapped[User] = relationship()


class AuditLog(Base):
    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=now_utc, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(48), doc="e.g. review, response, login, create_user")
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class FailedLogin(Base):
    """A failed login, kept for the login rate limit's window: every web process counts the same rows."""

    __tablename__ = "failed_logins"
    __table_args__ = (
        # Per (address, username) and per address: one index serves both prefixes.
        Index("ix_failed_logins_address", "address", "username", "at"),
        # Per username from any address (one account guessed from many addresses).
        Index("ix_failed_logins_username", "username", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(64), doc="the client's IP address")
    username: Mapped[str] = mapped_column(String(64), doc="as typed, lower-cased; need not exist")
    at: Mapped[datetime] = mapped_column(default=now_utc, index=True, doc="old rows are deleted by this")


class DeadLetter(Base):
    """A message the ingest refused, with the contract's reason code and the payload's first bytes."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=now_utc, index=True)
    topic: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(String(32), index=True)
    detail: Mapped[str] = mapped_column(Text)
    payload_size: Mapped[int]
    payload_head: Mapped[bytes] = mapped_column(LargeBinary)


class AgentReply(Base):
    """An agent's answer to a command."""

    __tablename__ = "agent_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    command_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    restaurant_id: Mapped[str] = mapped_column(ForeignKey("restaurants.id"))
    agent_id: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool]
    message: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=now_utc)


class ModelVersion(Base):
    """A model in the registry: its archive (in the media store), its card and its comparison report."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_model_versions_name_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64), doc="of model.onnx, as in the card")
    card: Mapped[dict[str, Any]]
    archive_key: Mapped[str] = mapped_column(String(300))
    archive_sha256: Mapped[str] = mapped_column(String(64), doc="what agents check after downloading")
    archive_bytes: Mapped[int]
    archive_type: Mapped[str] = mapped_column(String(32), doc="application/gzip, application/x-tar, zip")
    report_md: Mapped[str | None] = mapped_column(Text, doc="train compare's Markdown report")
    report: Mapped[dict[str, Any] | None] = mapped_column(doc="train compare's JSON report")
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    uploaded_at: Mapped[datetime] = mapped_column(default=now_utc)


class Rollout(Base):
    """Sending one model to chosen agents: a canary first, the rest after ``promote``.

    ``state``: canary → canary_ok → rolling → done, or failed / aborted (nothing more is sent, and the agents
    that had switched are sent back to their previous model). The download token is kept only as its
    SHA-256; it allows downloading this rollout's model until ``token_expires_at`` or the rollout stops.
    """

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime]
    base_url: Mapped[str | None] = mapped_column(
        String(2048), doc="where the agents download from; None for rollouts from before revision 0005"
    )
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(default=now_utc)

    model: Mapped[ModelVersion] = relationship()
    targets: Mapped[list[RolloutTarget]] = relationship(
        back_populates="rollout", order_by="RolloutTarget.position"
    )


class RolloutTarget(Base):
    """One agent of a rollout. ``state``: pending → sent → switched (reply ok) → running (stats show the
    model, no camera errors); or failed, rolled_back (the agent went back), skipped (the rollout stopped),
    superseded (a later rollout sent this agent another model). An agent that had switched when its
    rollout stopped goes revert_due → reverting (``SwitchBack`` sent) → reverted, or revert_failed. A
    target silent past ``registry.rollout_reply_timeout_s`` is given up (``rollout.expire_overdue``)."""

    __tablename__ = "rollout_targets"
    __table_args__ = (Index("ix_rollout_targets_agent", "restaurant_id", "agent_id", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rollout_id: Mapped[int] = mapped_column(ForeignKey("rollouts.id"), index=True)
    position: Mapped[int] = mapped_column(doc="0 is the canary")
    restaurant_id: Mapped[str] = mapped_column(ForeignKey("restaurants.id"))
    agent_id: Mapped[str] = mapped_column(String(64))
    command_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    message: Mapped[str] = mapped_column(Text, default="")
    sent_at: Mapped[datetime | None]
    switched_at: Mapped[datetime | None] = mapped_column(doc="the agent's clock, from its reply")
    updated_at: Mapped[datetime] = mapped_column(default=now_utc)
    # What the agent ran when the rollout started (its availability or stats): what it is sent back to.
    previous_model_name: Mapped[str | None] = mapped_column(String(64))
    previous_model_version: Mapped[str | None] = mapped_column(String(32))

    rollout: Mapped[Rollout] = relationship(back_populates="targets")


class SwitchBack(Base):
    """The ``switch_model`` command that sends one agent of a stopped rollout back to its previous model,
    with a download token of its own (that model only, until ``token_expires_at``)."""

    __tablename__ = "switch_backs"

    id: Mapped[int] = mapped_column(primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("rollout_targets.id"), unique=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), doc="the agent's previous model")
    command_id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime]
    sent_at: Mapped[datetime] = mapped_column(default=now_utc)

    target: Mapped[RolloutTarget] = relationship()
    model: Mapped[ModelVersion] = relationship()
