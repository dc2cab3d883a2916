"""Pipeline outputs → contract messages (``brightkitchen.contract``), ready for the outbox.

An event carries every detection of its best frame: first the ones behind the alert (their count in
``details["violation_boxes"]``), then the rest of the frame, so that its snapshot is fully labelled.

Each message gets an outbox kind (``event``, ``snapshot``, ``clip``, ``control``) that decides eviction, and
a stable id: ``event:<event_id>:<seq>`` or ``media:<event_id>:<kind>``, the same on every resend.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brightkitchen.contract import (
    MAX_DETECTIONS,
    VIOLATION_BOXES,
    Box,
    Detection,
    EventMessage,
    FrameSize,
    MediaMessage,
    ModelRef,
    camera_topic,
    encode,
    utc_now,
)
from edge_agent.detector import Detector
from edge_agent.events import EventChange
from edge_agent.evidence import Media
from edge_agent.pipeline import Output


@dataclass(frozen=True)
class Outgoing:
    """One message for the outbox."""

    msg_id: str
    kind: str
    topic: str
    payload: bytes


def model_ref(detector: Detector) -> ModelRef:
    card = detector.card
    return ModelRef(name=card.name[:64], version=card.version[:32], sha256=card.sha256)


def event_message(change: EventChange, restaurant: str, agent: str, model: ModelRef) -> EventMessage:
    ev = change.event
    best = ev.best
    w, h = best.frame.size
    dets = best.detections
    names = dets.data.get("class_name", np.array([""] * len(dets)))
    behind = set(best.indices)
    rows = [*best.indices, *(i for i in range(len(dets)) if i not in behind)][:MAX_DETECTIONS]
    detections = []
    for i in rows:
        x1, y1, x2, y2 = (float(v) for v in dets.xyxy[i])
        box = Box(
            x1=min(1, max(0, x1 / w)),
            y1=min(1, max(0, y1 / h)),
            x2=min(1, max(0, x2 / w)),
            y2=min(1, max(0, y2 / h)),
        )
        track = int(dets.tracker_id[i]) if dets.tracker_id is not None and dets.tracker_id[i] >= 0 else None
        score = float(dets.confidence[i]) if dets.confidence is not None else ev.score
        detections.append(Detection(label=str(names[i])[:64], score=score, box=box, track_id=track))
    return EventMessage(
        event_id=ev.event_id,
        seq=ev.next_seq(),
        phase=change.phase,
        restaurant=restaurant,
        camera=ev.camera,
        agent=agent,
        rule=ev.rule,
        rule_name=ev.rule_name[:64],
        severity=ev.severity,
        started_at=ev.started_at,
        ended_at=ev.last_at if change.phase == "end" else None,
        sent_at=utc_now(),
        score=min(1.0, ev.score),
        detections=detections,
        details={**ev.details, VIOLATION_BOXES: len(best.indices)},
        frame=FrameSize(width=w, height=h),
        model=model,
        media=list(ev.media),
    )


def to_outgoing(item: Output, restaurant: str, agent: str, model: ModelRef) -> Outgoing:
    """Encode one pipeline output for the outbox."""
    if isinstance(item, Media):
        msg = MediaMessage.from_bytes(
            item.data,
            event_id=item.event_id,
            restaurant=restaurant,
            camera=item.camera,
            kind=item.kind,
            content_type=item.content_type,
            captured_at=item.captured_at,
        )
        kind = "clip" if item.kind == "clip" else "snapshot"
        return Outgoing(
            f"media:{item.event_id}:{item.kind}",
            kind,
            camera_topic(restaurant, msg.camera, "media"),
            encode(msg),
        )
    msg = event_message(item, restaurant, agent, model)
    return Outgoing(
        f"event:{msg.event_id}:{msg.seq}", "event", camera_topic(restaurant, msg.camera, "event"), encode(msg)
    )
