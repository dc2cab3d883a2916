"""The MQTT contract: round trips, every decode() reason code, timestamps, topics, and docs/ kept in step."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import jsonschema
import pytest

from brightkitchen import contract as c

DOCS = Path(__file__).resolve().parent.parent / "docs"
T0 = datetime(2026, 11, 29, 8, 22, 1, tzinfo=UTC)
MODEL = c.ModelRef(name="bk-detector", version="1.0.0")
EVENT_TOPIC = "bk/v1/r-0001/camera/prep-1/event"
AVAILABILITY_TOPIC = "bk/v1/r-0001/agent/box-01/availability"


def _event(**overrides: Any) -> c.EventMessage:
    fields: dict[str, Any] = {
        "event_id": uuid4(),
        "seq": 0,
        "phase": "new",
        "restaurant": "r-0001",
        "camera": "prep-1",
        "agent": "box-01",
        "rule": "board_misuse",
        "severity": "high",
        "started_at": T0,
        "sent_at": T0 + timedelta(seconds=3),
        "score": 0.9,
        "detections": [
            c.Detection(label="board_red", score=0.9, box=c.Box(x1=0.1, y1=0.2, x2=0.5, y2=0.6), track_id=3)
        ],
        "details": {"board_colour": "red", "food": "vegetable", "duration_s": 3.2, "count": 2, "ok": False},
        "frame": c.FrameSize(width=1920, height=1080),
        "model": MODEL,
    }
    return c.EventMessage(**(fields | overrides))


def _media(blob: bytes = b"\xff\xd8\xff\xd9", **overrides: Any) -> c.MediaMessage:
    fields: dict[str, Any] = {
        "event_id": uuid4(),
        "restaurant": "r-0001",
        "camera": "prep-1",
        "kind": "snapshot",
        "content_type": "image/jpeg",
        "captured_at": T0,
    }
    return c.MediaMessage.from_bytes(blob, **(fields | overrides))


def _availability(**overrides: Any) -> c.AvailabilityMessage:
    fields: dict[str, Any] = {"restaurant": "r-0001", "agent": "box-01", "status": "online", "at": T0}
    return c.AvailabilityMessage(**(fields | overrides))


def _command(**overrides: Any) -> c.CommandMessage:
    fields: dict[str, Any] = {"command_id": uuid4(), "issued_at": T0, "action": "ping"}
    return c.CommandMessage(**(fields | overrides))


def _payload(msg: c.Message, **changes: Any) -> bytes:
    """The message's wire JSON with some keys replaced (``None`` deletes a key)."""
    raw = json.loads(c.encode(msg))
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return json.dumps(raw).encode()


def _all_messages() -> list[tuple[str, c.Message]]:
    media = _media()
    ended = _event(
        phase="end",
        seq=4,
        ended_at=T0 + timedelta(seconds=40),
        media=[c.MediaRef(kind="snapshot", content_type="image/jpeg", sha256=media.sha256, size_bytes=4)],
    )
    stats = c.StatsMessage(
        restaurant="r-0001",
        agent="box-01",
        at=T0,
        interval_s=10,
        model=MODEL,
        cameras=[
            c.CameraStats(
                camera="prep-1",
                online=True,
                fps=5,
                inference_ms=40.5,
                frames_processed=20,
                frames_skipped=30,
                last_frame_at=T0,
            ),
            c.CameraStats(
                camera="cold-1",
                online=False,
                fps=0,
                inference_ms=0,
                frames_processed=0,
                frames_skipped=0,
                error="usb:0: cannot open device",
            ),
        ],
        outbox_depth=3,
        outbox_bytes=12345,
    )
    switch = _command(
        action="switch_model",
        model=c.ModelDownload(
            name="bk-detector", version="1.1.0", url="https://example.com/m.tar", sha256="a" * 64, token="t"
        ),
    )
    reply = c.ReplyMessage(
        command_id=switch.command_id, restaurant="r-0001", agent="box-01", at=T0, ok=True, model=MODEL
    )
    messages: list[c.Message] = [
        _event(),
        _event(phase="update", seq=1, rule_name="prep boards"),
        ended,
        media,
        _media(b"\x00\x00\x00\x18ftypmp42" * 100, kind="clip", content_type="video/mp4"),
        _availability(software_version="0.1.0", model=MODEL, cameras=["prep-1", "cold-1"]),
        _availability(status="offline", at=None),
        stats,
        _command(),
        switch,
        reply,
    ]
    topics = {
        id(m): c.agent_topic("r-0001", "box-01", "command") if m.type == "command" else c.topic_for(m)
        for m in messages
    }
    return [(topics[id(m)], m) for m in messages]


# --- round trips -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "msg"), [pytest.param(t, m, id=f"{m.type}-{i}") for i, (t, m) in enumerate(_all_messages())]
)
def test_round_trip(topic: str, msg: c.Message) -> None:
    payload = c.encode(msg)
    back = c.decode(topic, payload)
    assert back == msg
    assert type(back) is type(msg)
    assert c.encode(back) == payload
    assert b"null" not in payload, "optional fields are left out, not sent as null"


def test_topic_helpers() -> None:
    assert c.camera_topic("r-0001", "prep-1", "event") == EVENT_TOPIC
    assert c.agent_topic("r-0001", "box-01", "availability") == AVAILABILITY_TOPIC
    assert c.topic_for(_event()) == EVENT_TOPIC
    assert c.topic_for(_media()) == "bk/v1/r-0001/camera/prep-1/media"
    parsed = c.parse_topic("bk/v1/r-0001/agent/box-01/reply")
    assert parsed == c.Topic("r-0001", "reply", agent="box-01")
    assert str(parsed) == "bk/v1/r-0001/agent/box-01/reply"


def test_media_blob_and_hash() -> None:
    blob = b"\xff\xd8" + bytes(range(256)) + b"\xff\xd9"
    msg = _media(blob)
    assert msg.blob() == blob
    assert msg.sha256 == hashlib.sha256(blob).hexdigest()


# --- decode() reason codes ---------------------------------------------------------------------------------


def _reason(topic: str, payload: bytes) -> str:
    with pytest.raises(c.ContractError) as info:
        c.decode(topic, payload)
    assert str(info.value).startswith(info.value.reason + ": ")
    assert info.value.detail
    return info.value.reason


@pytest.mark.parametrize(
    "topic",
    [
        "bk/v1/r-0001/camera/prep-1/eventx",  # unknown kind
        "bk/v1/r-0001/agent/prep-1/event",  # event is a camera topic
        "bk/v1/r-0001/camera/box-01/stats",  # stats is an agent topic
        "bk/v1/r-0001/camera/prep-1",  # too short
        "bk/v1/r-0001/camera/prep-1/event/extra",  # too long
        "bk/vX/r-0001/camera/prep-1/event",  # version not a number
        "xx/v1/r-0001/camera/prep-1/event",  # wrong root
        "bk/v1/-r/camera/prep-1/event",  # id may not start with '-'
        "bk/v1/r-0001/camera/prep.1/event",  # '.' not allowed in ids
        "bk/v1/" + "r" * 65 + "/camera/prep-1/event",  # id too long
        "bk/v1/r-0001/robot/prep-1/event",  # neither camera/ nor agent/
    ],
)
def test_bad_topic(topic: str) -> None:
    assert _reason(topic, c.encode(_event())) == "bad_topic"


def test_unsupported_version_in_topic() -> None:
    assert _reason("bk/v2/r-0001/camera/prep-1/event", c.encode(_event())) == "unsupported_version"


@pytest.mark.parametrize("version", [2, 0, "1", None])
def test_unsupported_version_in_payload(version: Any) -> None:
    payload = _payload(_event(), v=version) if version is not None else _payload(_event(), v=None)
    assert _reason(EVENT_TOPIC, payload) == "unsupported_version"


def test_too_large_is_checked_before_parsing() -> None:
    assert _reason(EVENT_TOPIC, b"{" + b" " * c.MAX_EVENT_BYTES) == "too_large"
    assert _reason(AVAILABILITY_TOPIC, b"x" * (c.MAX_CONTROL_BYTES + 1)) == "too_large"


def test_limits_are_per_topic() -> None:
    # A payload too large for a control topic is fine on the event topic (padding is insignificant space).
    padded = c.encode(_event()) + b" " * c.MAX_CONTROL_BYTES
    assert len(padded) <= c.MAX_EVENT_BYTES
    assert isinstance(c.decode(EVENT_TOPIC, padded), c.EventMessage)


@pytest.mark.parametrize("payload", [b"{not json", b"\xff\xfe{}", b"[1, 2]", b'"event"', b"", b"null"])
def test_bad_json(payload: bytes) -> None:
    assert _reason(EVENT_TOPIC, payload) == "bad_json"


@pytest.mark.parametrize(
    "changes",
    [
        {"seq": -1},
        {"score": 1.5},
        {"severity": "urgent"},
        {"rule": "Board Misuse"},
        {"surprise": "unknown fields are rejected"},
        {"event_id": "not-a-uuid"},
        {"started_at": "2026-11-29T08:22:01"},  # no offset
        {"phase": "end"},  # end without ended_at
        {"ended_at": "2026-11-29T08:30:00.000Z"},  # ended_at on a 'new'
        {"frame": None},  # missing required field
        {"type": "media"},  # another message type on the event topic
        {"detections": [{"label": "x", "score": 0.5, "box": {"x1": 0.6, "y1": 0, "x2": 0.5, "y2": 1}}]},
    ],
    ids=lambda ch: ",".join(ch),
)
def test_invalid(changes: dict[str, Any]) -> None:
    assert _reason(EVENT_TOPIC, _payload(_event(), **changes)) == "invalid"


def test_invalid_command_model_only_with_switch() -> None:
    topic = c.agent_topic("r-0001", "box-01", "command")
    assert _reason(topic, _payload(_command(), action="switch_model")) == "invalid"


def test_media_sha256_mismatch_rejected() -> None:
    msg = _media(b"\xff\xd8real bytes\xff\xd9")
    topic = c.topic_for(msg)
    assert _reason(topic, _payload(msg, sha256="0" * 64)) == "invalid"
    assert _reason(topic, _payload(msg, data="not base64!")) == "invalid"
    with pytest.raises(ValueError, match="sha256 does not match"):
        c.MediaMessage(**(msg.model_dump() | {"sha256": "0" * 64}))


def test_media_size_limit_by_kind() -> None:
    big = b"\x00" * (c.MAX_SNAPSHOT_BYTES + 1)
    with pytest.raises(ValueError, match="over the limit"):
        _media(big)
    assert _media(big, kind="clip", content_type="video/mp4").kind == "clip"


@pytest.mark.parametrize(
    ("topic", "field"),
    [
        ("bk/v1/r-0002/camera/prep-1/event", "restaurant"),
        ("bk/v1/r-0001/camera/prep-2/event", "camera"),
        ("bk/v1/r-0001/camera/prep-2/media", "camera"),
        ("bk/v1/r-0002/agent/box-01/availability", "restaurant"),
        ("bk/v1/r-0001/agent/box-02/availability", "agent"),
    ],
)
def test_topic_mismatch(topic: str, field: str) -> None:
    msg: c.Message = _media() if topic.endswith("/media") else _event()
    if "/agent/" in topic:
        msg = _availability()
    with pytest.raises(c.ContractError) as info:
        c.decode(topic, c.encode(msg))
    assert info.value.reason == "topic_mismatch"
    assert field in info.value.detail


# --- timestamps --------------------------------------------------------------------------------------------


def test_timestamps_are_utc_with_milliseconds_and_z() -> None:
    shanghai = timezone(timedelta(hours=8))
    local = datetime(2026, 11, 29, 16, 22, 1, 123456, tzinfo=shanghai)
    msg = _event(started_at=local, sent_at=local)
    assert msg.started_at == local
    assert msg.started_at.utcoffset() == timedelta(0)
    raw = json.loads(c.encode(msg))
    assert raw["started_at"] == "2026-11-29T08:22:01.123Z"
    assert raw["sent_at"] == "2026-11-29T08:22:01.123Z"
    whole = json.loads(c.encode(_event(started_at=T0, sent_at=T0)))
    assert whole["started_at"] == "2026-11-29T08:22:01.000Z"


def test_received_offsets_are_converted_to_utc() -> None:
    payload = _payload(_event(), started_at="2026-11-29T16:22:01.5+08:00", sent_at="2026-11-29T08:22:04Z")
    msg = c.decode(EVENT_TOPIC, payload)
    assert isinstance(msg, c.EventMessage)
    assert msg.started_at == datetime(2026, 11, 29, 8, 22, 1, 500000, tzinfo=UTC)
    assert msg.started_at.tzinfo == UTC
    assert json.loads(c.encode(msg))["started_at"] == "2026-11-29T08:22:01.500Z"


def test_naive_datetime_rejected() -> None:
    with pytest.raises(ValueError, match="timezone"):
        _event(started_at=datetime(2026, 11, 29, 8, 22, 1))


def test_utc_now_has_millisecond_precision() -> None:
    now = c.utc_now()
    assert now.tzinfo == UTC
    assert now.microsecond % 1000 == 0


# --- subscriptions -----------------------------------------------------------------------------------------


def test_subscriptions_without_share_group() -> None:
    subs = c.subscriptions()
    assert subs == [
        "bk/v1/+/camera/+/event",
        "bk/v1/+/camera/+/media",
        "bk/v1/+/agent/+/availability",
        "bk/v1/+/agent/+/stats",
        "bk/v1/+/agent/+/reply",
    ]
    assert not any("command" in s for s in subs), "the dashboard does not listen to its own commands"


def test_subscriptions_with_share_group() -> None:
    shared = c.subscriptions("ingest")
    assert shared == [f"$share/ingest/{s}" for s in c.subscriptions()]


def _matches(topic_filter: str, topic: str) -> bool:
    pattern = "^" + re.escape(topic_filter).replace(r"\+", "[^/]+") + "$"
    return re.match(pattern, topic) is not None


def test_subscriptions_cover_every_edge_topic() -> None:
    for topic, msg in _all_messages():
        if msg.type != "command":
            assert any(_matches(f, topic) for f in c.subscriptions()), topic


# --- docs/ kept in step with the models --------------------------------------------------------------------


def test_exported_schema_matches_models() -> None:
    path = DOCS / "mqtt-schema.json"
    assert path.is_file(), "docs/mqtt-schema.json is missing: run `brightkitchen schema`"
    exported = json.loads(path.read_text(encoding="utf-8"))
    assert exported == c.json_schema(), (
        "docs/mqtt-schema.json disagrees with brightkitchen/contract.py: "
        "run `brightkitchen schema` and commit the file"
    )


def _doc_examples() -> list[tuple[str, str]]:
    """``(topic, json text)`` per ```json block in docs/mqtt.md; the topic is the ``Topic:`` line above."""
    text = (DOCS / "mqtt.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^Topic: (\S+)\n\n```json\n(.*?)^```$", text, flags=re.M | re.S)
    assert len(blocks) == text.count("```json"), "every ```json block needs a 'Topic: ...' line just above"
    return blocks


def test_docs_have_one_example_per_topic_kind() -> None:
    kinds = sorted(c.parse_topic(topic).kind for topic, _ in _doc_examples())
    assert kinds == sorted(["event", "media", "availability", "stats", "command", "reply"])


@pytest.mark.parametrize(("topic", "text"), [pytest.param(t, j, id=t) for t, j in _doc_examples()])
def test_doc_example_decodes_and_matches_schema(topic: str, text: str) -> None:
    msg = c.decode(topic, text.encode())
    assert msg.type == c.parse_topic(topic).kind
    schema = json.loads((DOCS / "mqtt-schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(text), schema, cls=jsonschema.Draft202012Validator)


def test_schema_validates_encoded_messages_and_rejects_unknown_fields() -> None:
    schema = c.json_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for _, msg in _all_messages():
        validator.validate(json.loads(c.encode(msg)))
    bad = json.loads(c.encode(_event())) | {"surprise": 1}
    assert not validator.is_valid(bad)


def test_uuid_fields_are_uuids() -> None:
    msg = _event(event_id=UUID("5f0c2a7e-3b1d-4c8e-9a61-2d7f4e8b9c10"))
    assert json.loads(c.encode(msg))["event_id"] == "5f0c2a7e-3b1d-4c8e-9a61-2d7f4e8b9c10"
