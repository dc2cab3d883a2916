"""Hand-made detections and configs for the pure (no model, no broker) edge tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import supervision as sv

from brightkitchen.contract import EventMessage, FrameSize, ModelRef, camera_topic, encode, utc_now
from brightkitchen.model_card import LabelInfo
from edge_agent.config import EdgeConfig, RuleConfig
from edge_agent.rules.base import LabelMap
from edge_agent.sources import Frame
from training.classes import label_map

LABELS = [LabelInfo.model_validate(x) for x in label_map()]
LABEL_MAP = LabelMap(LABELS)
T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def dets(*rows: tuple[Any, ...]) -> sv.Detections:
    """Rows of (class_name, x1, y1, x2, y2[, confidence[, track_id]])."""
    if not rows:
        return sv.Detections.empty()
    ids = {x.name: x.id for x in LABELS}
    xyxy = np.array([r[1:5] for r in rows], dtype=np.float32)
    conf = np.array([r[5] if len(r) > 5 else 0.9 for r in rows], dtype=np.float32)
    out = sv.Detections(
        xyxy=xyxy,
        confidence=conf,
        class_id=np.array([ids[r[0]] for r in rows]),
        data={"class_name": np.array([r[0] for r in rows])},
    )
    if all(len(r) > 6 for r in rows):
        out.tracker_id = np.array([r[6] for r in rows])
    return out


def rule_cfg(type_: str, **kw: Any) -> RuleConfig:
    return RuleConfig.model_validate({"type": type_, **kw})


def frame(
    t: float, w: int = 640, h: int = 360, camera: str = "cam1", image: np.ndarray | None = None
) -> Frame:
    img = image if image is not None else np.zeros((h, w, 3), np.uint8)
    return Frame(camera, int(t * 10), t, T0 + timedelta(seconds=t), img)


def edge_cfg(**overrides: Any) -> EdgeConfig:
    data: dict[str, Any] = {
        "agent": {"id": "box-1", "restaurant": "r-a"},
        "model": {"path": "models/none"},
        "cameras": [{"id": "cam1", "source": "clip.mp4", "rules": [{"type": "board_misuse"}]}],
    }
    data.update(overrides)
    return EdgeConfig.model_validate(data)


def event_row(i: int, restaurant: str = "r-a") -> tuple[str, str, str, bytes]:
    """An outbox row (msg_id, kind, topic, payload) holding a valid event whose details carry ``n = i``."""
    msg = EventMessage(
        event_id=uuid.UUID(int=i + 1),
        seq=0,
        phase="new",
        restaurant=restaurant,
        camera="cam1",
        agent="box-1",
        rule="board_misuse",
        severity="high",
        started_at=utc_now(),
        sent_at=utc_now(),
        score=0.9,
        frame=FrameSize(width=640, height=360),
        model=ModelRef(name="m", version="1"),
        details={"n": i},
    )
    return f"event:{msg.event_id}:0", "event", camera_topic(restaurant, "cam1", "event"), encode(msg)
