"""The MQTT contract between edge agents and the dashboard: topics, payload models, size limits.

This module is the only definition of the wire format; both sides import it, and ``docs/mqtt-schema.json``
is exported from it (``brightkitchen schema``). ``docs/mqtt.md`` explains it for third parties.

Topic layout (``v1`` is the contract version; ids match ``ID_PATTERN``)::

    bk/v1/{restaurant}/camera/{camera}/event          EventMessage       edge → dashboard, QoS 1
    bk/v1/{restaurant}/camera/{camera}/media          MediaMessage       edge → dashboard, QoS 1
    bk/v1/{restaurant}/agent/{agent}/availability     AvailabilityMessage retained, last will "offline"
    bk/v1/{restaurant}/agent/{agent}/stats            StatsMessage       edge → dashboard, QoS 0
    bk/v1/{restaurant}/agent/{agent}/command          CommandMessage     dashboard → edge, QoS 1
    bk/v1/{restaurant}/agent/{agent}/reply            ReplyMessage       edge → dashboard, QoS 1

Example::

    msg = decode(topic, payload)        # raises ContractError with a reason; never anything else
    client.publish(topic_for(msg), encode(msg), qos=1)
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

CONTRACT_VERSION = 1
TOPIC_ROOT = f"bk/v{CONTRACT_VERSION}"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"

# Size limits, checked before parsing (a broker may carry far larger messages).
MAX_EVENT_BYTES = 64 * 1024
MAX_STATS_BYTES = 64 * 1024
MAX_CONTROL_BYTES = 16 * 1024  # availability, command, reply
MAX_SNAPSHOT_BYTES = 2 * 1024 * 1024  # decoded JPEG
MAX_CLIP_BYTES = 12 * 1024 * 1024  # decoded MP4/WebM
MAX_MEDIA_MESSAGE_BYTES = MAX_CLIP_BYTES * 4 // 3 + 4096  # base64 plus the envelope
MAX_DETECTIONS = 200
# details key of an event: the first n detections are the boxes behind the alert, the rest is the other
# detections of the same frame; without it (older agents) every detection is behind the alert.
VIOLATION_BOXES = "violation_boxes"


class ContractError(ValueError):
    """A message that does not follow the contract; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcTime = Annotated[
    AwareDatetime,
    AfterValidator(_to_utc),
    PlainSerializer(lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z"), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""A timezone-aware timestamp, stored in UTC and sent as ``2026-11-29T08:22:04.123Z``."""

Id = Annotated[str, Field(pattern=ID_PATTERN, description="restaurant, camera or agent id")]
Unit = Annotated[float, Field(ge=0.0, le=1.0)]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
Severity = Literal["low", "medium", "high", "critical"]
MediaKind = Literal["snapshot", "snapshot_clean", "clip"]


def utc_now() -> datetime:
    """Now, in UTC, to the millisecond (what the wire carries)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = Field(CONTRACT_VERSION, description="contract version; also the topic's v1 segment")


class Box(BaseModel):
    """An axis-aligned box in coordinates normalised to the frame (0..1, origin top-left)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    x1: Unit
    y1: Unit
    x2: Unit
    y2: Unit

    @model_validator(mode="after")
    def _ordered(self) -> Box:
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError("box corners must satisfy x1 <= x2 and y1 <= y2")
        return self


class Detection(BaseModel):
    """One detected object at the event's best frame (``details.violation_boxes`` says which are the
    violation's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(max_length=64, description="class name from the model's label map")
    score: Unit
    box: Box
    track_id: int | None = Field(None, ge=0)


class ModelRef(BaseModel):
    """Which detector produced something."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=64)
    version: str = Field(max_length=32)
    sha256: Sha256 | None = None


class FrameSize(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    width: int = Field(gt=0, le=16384)
    height: int = Field(gt=0, le=16384)


class MediaRef(BaseModel):
    """A media item announced by an event; its bytes arrive in a ``MediaMessage`` with the same sha256."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: MediaKind
    content_type: Literal["image/jpeg", "video/mp4", "video/webm"]
    sha256: Sha256
    size_bytes: int = Field(gt=0, le=MAX_CLIP_BYTES)


DetailValue = str | int | float | bool


class EventMessage(_Message):
    """A violation episode's lifecycle: one ``new``, any number of ``update``, one ``end``, same ``event_id``.

    Delivery is at least once: the receiver upserts by ``event_id`` and keeps the highest ``seq``.
    """

    type: Literal["event"] = "event"
    event_id: UUID
    seq: int = Field(ge=0, description="increases with every message of this event")
    phase: Literal["new", "update", "end"]
    restaurant: Id
    camera: Id
    agent: Id
    rule: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$", description="rule type, e.g. board_misuse")
    rule_name: str | None = Field(None, max_length=64, description="the rule's name in the camera config")
    severity: Severity
    started_at: UtcTime
    ended_at: UtcTime | None = None
    sent_at: UtcTime
    score: Unit = Field(description="highest detection confidence behind the event so far")
    detections: list[Detection] = Field(default_factory=list, max_length=MAX_DETECTIONS)
    details: dict[Annotated[str, Field(max_length=64)], DetailValue] = Field(
        default_factory=dict, max_length=32, description="rule-specific facts, e.g. board_colour, food"
    )
    frame: FrameSize
    model: ModelRef
    media: list[MediaRef] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _phase_consistent(self) -> EventMessage:
        if (self.phase == "end") != (self.ended_at is not None):
            raise ValueError("ended_at is required for phase 'end' and only then")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        return self


class MediaMessage(_Message):
    """The bytes of one snapshot or clip of an event, base64 in JSON so any MQTT client can send it."""

    type: Literal["media"] = "media"
    event_id: UUID
    restaurant: Id
    camera: Id
    kind: MediaKind
    content_type: Literal["image/jpeg", "video/mp4", "video/webm"]
    sha256: Sha256
    captured_at: UtcTime
    data: str = Field(description="base64 (RFC 4648) of the file")

    _blob: bytes = PrivateAttr(b"")

    @model_validator(mode="after")
    def _decode_once(self) -> MediaMessage:
        """Decode the base64 once, check size and hash, and keep the bytes for ``blob()``."""
        try:
            blob = base64.b64decode(self.data, validate=True)
        except ValueError as exc:
            raise ValueError(f"data is not valid base64: {exc}") from exc
        limit = MAX_CLIP_BYTES if self.kind == "clip" else MAX_SNAPSHOT_BYTES
        if len(blob) > limit:
            raise ValueError(f"{self.kind} is {len(blob)} bytes, over the limit of {limit}")
        if hashlib.sha256(blob).hexdigest() != self.sha256:
            raise ValueError("sha256 does not match data")
        self._blob = blob
        return self

    def blob(self) -> bytes:
        """The decoded file bytes (decoded once, at validation)."""
        return self._blob

    @classmethod
    def from_bytes(cls, blob: bytes, **fields: Any) -> MediaMessage:
        """Build a media message from raw file bytes (computes data and sha256)."""
        data = base64.b64encode(blob).decode("ascii")
        return cls(data=data, sha256=hashlib.sha256(blob).hexdigest(), **fields)


class AvailabilityMessage(_Message):
    """Retained on the availability topic; the broker publishes the ``offline`` last will on a lost link."""

    type: Literal["availability"] = "availability"
    restaurant: Id
    agent: Id
    status: Literal["online", "offline"]
    at: UtcTime | None = Field(None, description="absent in the last will, which is written at connect time")
    software_version: str | None = Field(None, max_length=32)
    model: ModelRef | None = None
    cameras: list[Id] = Field(default_factory=list, max_length=256)


class CameraStats(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    camera: Id
    online: bool
    fps: float = Field(ge=0, description="frames read per second over the interval")
    inference_ms: float = Field(ge=0, description="mean detector time per processed frame")
    frames_processed: int = Field(ge=0)
    frames_skipped: int = Field(ge=0, description="skipped by the motion gate over the interval")
    last_frame_at: UtcTime | None = None
    error: str | None = Field(None, max_length=500)


class StatsMessage(_Message):
    """Periodic health of an agent and its cameras."""

    type: Literal["stats"] = "stats"
    restaurant: Id
    agent: Id
    at: UtcTime
    interval_s: float = Field(gt=0)
    model: ModelRef | None = None
    cameras: list[CameraStats] = Field(default_factory=list, max_length=256)
    outbox_depth: int = Field(ge=0, description="messages waiting on disk for the broker")
    outbox_bytes: int = Field(ge=0)


class ModelDownload(BaseModel):
    """Where an agent fetches a model archive, and the hash it must have."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(max_length=64)
    version: str = Field(max_length=32)
    url: str = Field(max_length=2048, pattern=r"^https?://")
    sha256: Sha256
    token: str | None = Field(None, max_length=512, description="bearer token for the download")


class CommandMessage(_Message):
    """An instruction from the dashboard to one agent; answered by a ``ReplyMessage`` with the same id."""

    type: Literal["command"] = "command"
    command_id: UUID
    issued_at: UtcTime
    action: Literal["ping", "reload_config", "switch_model", "rollback_model"]
    model: ModelDownload | None = None

    @model_validator(mode="after")
    def _model_iff_switch(self) -> CommandMessage:
        if (self.action == "switch_model") != (self.model is not None):
            raise ValueError("model is required for action 'switch_model' and only then")
        return self


class ReplyMessage(_Message):
    """An agent's answer to a command."""

    type: Literal["reply"] = "reply"
    command_id: UUID
    restaurant: Id
    agent: Id
    at: UtcTime
    ok: bool
    message: str = Field("", max_length=2000)
    model: ModelRef | None = None


Message = EventMessage | MediaMessage | AvailabilityMessage | StatsMessage | CommandMessage | ReplyMessage

# topic kind → (model, owner segment, size limit)
_TOPICS: dict[str, tuple[type[_Message], str, int]] = {
    "event": (EventMessage, "camera", MAX_EVENT_BYTES),
    "media": (MediaMessage, "camera", MAX_MEDIA_MESSAGE_BYTES),
    "availability": (AvailabilityMessage, "agent", MAX_CONTROL_BYTES),
    "stats": (StatsMessage, "agent", MAX_STATS_BYTES),
    "command": (CommandMessage, "agent", MAX_CONTROL_BYTES),
    "reply": (ReplyMessage, "agent", MAX_CONTROL_BYTES),
}
_TOPIC_RE = re.compile(
    r"^bk/v(?P<v>\d+)/(?P<restaurant>[^/]+)/(?P<owner>camera|agent)/(?P<source>[^/]+)/(?P<kind>[a-z]+)$"
)
_ID_RE = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class Topic:
    """A parsed topic: whose message it is and of which kind."""

    restaurant: str
    kind: str
    camera: str | None = None
    agent: str | None = None

    def __str__(self) -> str:
        owner, source = ("camera", self.camera) if self.camera else ("agent", self.agent)
        return f"{TOPIC_ROOT}/{self.restaurant}/{owner}/{source}/{self.kind}"


def camera_topic(restaurant: str, camera: str, kind: Literal["event", "media"]) -> str:
    return str(Topic(restaurant, kind, camera=camera))


def agent_topic(
    restaurant: str, agent: str, kind: Literal["availability", "stats", "command", "reply"]
) -> str:
    return str(Topic(restaurant, kind, agent=agent))


def topic_for(msg: EventMessage | MediaMessage | AvailabilityMessage | StatsMessage | ReplyMessage) -> str:
    """The topic an edge-side message is published on (a command's topic is ``agent_topic(...)``)."""
    if isinstance(msg, EventMessage | MediaMessage):
        return camera_topic(msg.restaurant, msg.camera, msg.type)
    return agent_topic(msg.restaurant, msg.agent, msg.type)


def subscriptions(share_group: str | None = None) -> list[str]:
    """What the dashboard's ingest subscribes to; with a group, as an MQTT 5 shared subscription."""
    filters = [f"{TOPIC_ROOT}/+/camera/+/{k}" for k in ("event", "media")]
    filters += [f"{TOPIC_ROOT}/+/agent/+/{k}" for k in ("availability", "stats", "reply")]
    return [f"$share/{share_group}/{f}" for f in filters] if share_group else filters


def parse_topic(topic: str) -> Topic:
    """Split a topic into restaurant, camera/agent and kind, or raise ``ContractError('bad_topic')``."""
    m = _TOPIC_RE.match(topic)
    if not m:
        raise ContractError("bad_topic", f"topic {topic!r} does not follow bk/v1/<restaurant>/...")
    if m["v"] != str(CONTRACT_VERSION):
        raise ContractError("unsupported_version", f"topic version v{m['v']}, this side speaks v1")
    kind, owner = m["kind"], m["owner"]
    if kind not in _TOPICS or _TOPICS[kind][1] != owner:
        raise ContractError("bad_topic", f"unknown kind {kind!r} under {owner}/ in topic {topic!r}")
    for value in (m["restaurant"], m["source"]):
        if not _ID_RE.match(value):
            raise ContractError("bad_topic", f"id {value!r} in topic {topic!r} does not match {ID_PATTERN}")
    source = {owner: m["source"]}
    return Topic(m["restaurant"], kind, **source)


def encode(msg: Message) -> bytes:
    """Compact UTF-8 JSON for the wire."""
    return msg.model_dump_json(exclude_none=True).encode("utf-8")


def decode(topic: str, payload: bytes) -> Message:
    """Validate a received message against its topic; raise ``ContractError`` with a reason code.

    Reasons: ``bad_topic``, ``too_large``, ``bad_json``, ``unsupported_version``, ``invalid``,
    ``topic_mismatch`` (the payload names another restaurant, camera or agent than its topic — spoofing).
    """
    where = parse_topic(topic)
    model, _, limit = _TOPICS[where.kind]
    if len(payload) > limit:
        raise ContractError("too_large", f"{len(payload)} bytes on a {where.kind} topic, limit {limit}")
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError("bad_json", str(exc)) from None
    if not isinstance(raw, dict):
        raise ContractError("bad_json", "payload is not a JSON object")
    if type(raw.get("v")) is not int or raw["v"] != CONTRACT_VERSION:
        raise ContractError("unsupported_version", f"payload v={raw.get('v')!r}, this side speaks v1")
    try:
        msg = model.model_validate(raw)
    except ValidationError as exc:
        raise ContractError("invalid", _summarise(exc)) from None
    for key in ("restaurant", "camera", "agent"):
        said, expected = getattr(msg, key, None), getattr(where, key)
        if expected is not None and said is not None and said != expected:
            raise ContractError("topic_mismatch", f"payload {key}={said!r} on topic of {key} {expected!r}")
    return msg


def _summarise(exc: ValidationError) -> str:
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]]
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def json_schema() -> dict[str, Any]:
    """One JSON Schema document with a definition per message type (``docs/mqtt-schema.json``)."""
    adapter: TypeAdapter[Any] = TypeAdapter(Annotated[Message, Field(discriminator="type")])
    schema = adapter.json_schema(mode="serialization", ref_template="#/$defs/{model}")
    for name in (
        "EventMessage",
        "MediaMessage",
        "AvailabilityMessage",
        "StatsMessage",
        "CommandMessage",
        "ReplyMessage",
    ):  # decode() insists on both, though the models have defaults for them
        required = schema["$defs"][name].setdefault("required", [])
        required[:0] = [k for k in ("v", "type") if k not in required]
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://bright-kitchen.invalid/schema/mqtt-v{CONTRACT_VERSION}.json"
    schema["title"] = f"Bright Kitchen MQTT contract v{CONTRACT_VERSION}"
    schema["description"] = (
        "Payloads of the topics under bk/v1/. Generated from brightkitchen/contract.py by "
        "`brightkitchen schema`; do not edit by hand."
    )
    return schema
