"""Event messages carry the whole best frame: the boxes behind the alert first, then the rest of it."""

from __future__ import annotations

import numpy as np

from brightkitchen.contract import VIOLATION_BOXES, ModelRef
from edge_agent.events import EventTracker
from edge_agent.rules.base import Hit
from edge_agent.wire import event_message

from .helpers import dets, frame, rule_cfg


def test_event_lists_the_violation_first_then_the_rest_of_the_frame() -> None:
    frame_dets = dets(
        ("container", 500, 200, 600, 300, 0.6, 7),
        ("raw_meat", 150, 140, 200, 180, 0.8, 4),
        ("board_blue", 100, 100, 300, 250, 0.9, 3),
        ("board_green", 320, 100, 480, 250, 0.7, 5),
    )
    hit = Hit(
        "board_misuse",
        "board_misuse",
        (3, "raw_meat"),
        0.8,
        np.array([100, 100, 300, 250.0]),
        (2, 1),
        {"board_colour": "blue", "food": "raw_meat"},
    )
    tracker = EventTracker("cam1", [rule_cfg("board_misuse", min_duration_s=1)])
    changes = [c for t in range(8) for c in tracker.update([hit], frame(t / 4), frame_dets)]
    (new,) = [c for c in changes if c.phase == "new"]
    msg = event_message(new, "r-a", "box-1", ModelRef(name="bk", version="1"))
    assert [d.label for d in msg.detections] == ["board_blue", "raw_meat", "container", "board_green"]
    assert [d.track_id for d in msg.detections] == [3, 4, 7, 5]
    assert msg.details == {"board_colour": "blue", "food": "raw_meat", VIOLATION_BOXES: 2}
    assert msg.detections[0].box.x1 == 100 / 640 and msg.detections[2].box.y2 == 300 / 360
