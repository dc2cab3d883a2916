"""Motion gate and tracker on synthetic frames and hand-made detections."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_agent.config import MotionSection, TrackingSection
from edge_agent.motion import MotionGate
from edge_agent.tracking import Tracker

from .helpers import LABELS, dets


def _scene(x: int = 100) -> np.ndarray:
    img = np.full((360, 640, 3), 90, np.uint8)
    img[150:220, x : x + 60] = (40, 220, 200)
    return img


def test_still_scene_is_skipped_except_the_forced_interval() -> None:
    gate = MotionGate(MotionSection(forced_interval_s=2.0))
    runs = [gate.check(_scene(), n / 5) for n in range(50)]  # 10 s at 5 fps
    assert [n / 5 for n, r in enumerate(runs) if r] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert gate.frames_skipped == 45


def test_moving_object_runs_the_detector() -> None:
    gate = MotionGate(MotionSection(forced_interval_s=100, max_detect_fps=None))
    assert gate.check(_scene(100), 0.0)
    assert gate.check(_scene(140), 0.2)
    assert not gate.check(_scene(140), 0.4)


@pytest.mark.parametrize("size", [(640, 360), (1920, 1080), (200, 120)])
def test_low_resolution_view_is_an_area_average_of_the_grey_frame(size: tuple[int, int]) -> None:
    """The gate's cheap downscale (bilinear halvings first) sees what INTER_AREA of the grey frame sees."""
    rng = np.random.default_rng(1)
    frame = cv2.resize(rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), np.uint8), size)
    frame = np.clip(frame + rng.integers(-20, 21, frame.shape), 0, 255).astype(np.uint8)  # fine texture
    gate = MotionGate(MotionSection(width_px=160))
    height = round(size[1] * 160 / size[0]) if size[0] > 160 else size[1]
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    expected = cv2.GaussianBlur(
        cv2.resize(grey, (min(160, size[0]), height), interpolation=cv2.INTER_AREA), (5, 5), 0
    )
    assert np.abs(gate._small(frame).astype(int) - expected).max() <= 2


def test_sensor_noise_does_not_count_as_motion() -> None:
    gate = MotionGate(MotionSection(forced_interval_s=100))
    rng = np.random.default_rng(0)
    gate.check(_scene(), 0.0)
    noisy = np.clip(_scene().astype(int) + rng.integers(-6, 7, (360, 640, 3)), 0, 255).astype(np.uint8)
    assert not gate.check(noisy, 0.2)


def test_slow_drift_adds_up_against_the_last_detected_frame() -> None:
    gate = MotionGate(MotionSection(forced_interval_s=100))
    gate.check(_scene(100), 0.0)
    ran = [gate.check(_scene(100 + k), k / 5) for k in range(1, 30)]
    assert any(ran), "a slowly sliding object must eventually wake the detector"


def test_disabled_gate_runs_every_frame() -> None:
    gate = MotionGate(MotionSection(enabled=False))
    assert all(gate.check(_scene(), n / 5) for n in range(10))


def test_tracker_keeps_ids_through_small_moves_and_short_gaps() -> None:
    tr = Tracker(iou=0.3, high_confidence=0.5, lost_s=2.0)
    a = tr.update(dets(("raw_meat", 100, 100, 150, 150, 0.9), ("board_blue", 50, 50, 300, 300, 0.9)), 0.0)
    ids = dict(zip(a.data["class_name"], a.tracker_id, strict=True))
    b = tr.update(dets(("raw_meat", 105, 102, 155, 152, 0.8)), 0.2)
    assert b.tracker_id.tolist() == [ids["raw_meat"]]
    c = tr.update(dets(("raw_meat", 106, 102, 156, 152, 0.8), ("board_blue", 50, 50, 300, 300, 0.9)), 1.8)
    assert sorted(c.tracker_id.tolist()) == sorted(ids.values())


def test_weak_boxes_continue_tracks_but_never_start_them() -> None:
    tr = Tracker(high_confidence=0.5)
    assert len(tr.update(dets(("container", 0, 0, 50, 50, 0.3)), 0.0)) == 0
    first = tr.update(dets(("container", 0, 0, 50, 50, 0.9)), 0.2).tracker_id[0]
    assert tr.update(dets(("container", 2, 0, 52, 50, 0.3)), 0.4).tracker_id.tolist() == [first]


def test_track_lost_for_too_long_gets_a_new_id() -> None:
    tr = Tracker(lost_s=1.0)
    first = tr.update(dets(("container", 0, 0, 50, 50)), 0.0).tracker_id[0]
    assert tr.update(dets(("container", 0, 0, 50, 50)), 1.5).tracker_id[0] != first


def test_classes_do_not_share_tracks() -> None:
    tr = Tracker()
    a = tr.update(dets(("raw_meat", 0, 0, 50, 50)), 0.0).tracker_id[0]
    assert tr.update(dets(("vegetable", 0, 0, 50, 50)), 0.2).tracker_id[0] != a


def test_one_object_keeps_one_label_of_its_kind() -> None:
    """Two food labels on one spot (per-class NMS keeps both): only the most confident reaches the rules."""
    tr = Tracker.from_config(TrackingSection(), LABELS)
    out = tr.update(
        dets(
            ("vegetable", 100, 100, 150, 150, 0.50),
            ("raw_seafood", 101, 100, 151, 151, 0.45),
            ("board_green", 98, 98, 152, 152, 0.9),  # another kind on the same spot stays
            ("raw_meat", 300, 100, 350, 150, 0.9),  # food elsewhere stays
        ),
        0.0,
    )
    assert sorted(out.data["class_name"].tolist()) == ["board_green", "raw_meat", "vegetable"]


def test_a_food_read_as_another_category_in_part_keeps_the_more_confident_label() -> None:
    # Candidate 0.6.0 on tuning clip 7200-007 (15 s): six cucumber slices on a green board, three of them read
    # as cooked food (IoU 0.48 with the whole, all of it inside): one object, not a cooked food on the board.
    tr = Tracker.from_config(TrackingSection(), LABELS)
    out = tr.update(
        dets(("vegetable", 399, 155, 479, 186, 0.59), ("cooked_food", 399, 158, 455, 179, 0.54)), 0
    )
    assert out.data["class_name"].tolist() == ["vegetable"]


def test_stacked_containers_of_two_classes_stay_two_objects() -> None:
    # An empty container set on one of food (boxes as in 7400-012): the upper box lies within the lower's.
    tr = Tracker.from_config(TrackingSection(), LABELS)
    stack = dets(("container_empty", 133, 160, 219, 233, 0.9), ("container", 126, 157, 250, 256, 0.8))
    assert len(tr.update(stack, 0.0)) == 2
    # one container read both ways (boxes of candidate 0.6.0 on 7200-006, IoU 0.97): one object
    double = dets(("container", 550, 120, 640, 209, 0.53), ("container_empty", 550, 119, 638, 208, 0.46))
    assert Tracker.from_config(TrackingSection(), LABELS).update(double, 0.0).data["class_name"].tolist() == [
        "container"
    ]


def test_a_food_track_reports_the_class_with_the_most_confidence_seen() -> None:
    """A food read as vegetable, then as raw meat for a moment (a hand over it): one track, still vegetable;
    read as raw meat for long enough, it becomes raw meat (a sighting weighs half after 1.5 s)."""
    tr = Tracker.from_config(TrackingSection(), LABELS)
    first = tr.update(dets(("vegetable", 100, 100, 150, 150, 0.8)), 0.0)
    names = []
    for k in range(1, 8):  # raw meat at 0.7 every 0.2 s
        out = tr.update(dets(("raw_meat", 101, 100, 151, 150, 0.7)), 0.2 * k)
        assert out.tracker_id.tolist() == first.tracker_id.tolist()
        assert out.confidence.tolist() == pytest.approx([0.7])  # the reading's own confidence
        names.append(out.data["class_name"][0])
    assert names == ["vegetable"] + ["raw_meat"] * 6
    # vegetable now needs to outweigh the raw meat seen, itself fading
    assert tr.update(dets(("vegetable", 100, 100, 150, 150, 0.9)), 1.6).data["class_name"].tolist() == [
        "raw_meat"
    ]


def test_a_weak_reading_of_another_class_does_not_continue_a_food_track() -> None:
    tr = Tracker.from_config(TrackingSection(), LABELS)
    tr.update(dets(("vegetable", 100, 100, 150, 150, 0.8)), 0.0)
    assert len(tr.update(dets(("raw_meat", 100, 100, 150, 150, 0.4)), 0.2)) == 0
    # boards and containers do not vote: a confident reading of another class is another object
    boards = Tracker.from_config(TrackingSection(), LABELS)
    a = boards.update(dets(("board_red", 0, 0, 200, 200, 0.9)), 0.0)
    b = boards.update(dets(("board_yellow", 0, 0, 200, 200, 0.9)), 0.2)
    assert b.data["class_name"].tolist() == ["board_yellow"] and b.tracker_id[0] != a.tracker_id[0]


def test_without_voting_each_reading_keeps_its_class() -> None:
    tr = Tracker.from_config(TrackingSection(vote_kinds=[]), LABELS)
    a = tr.update(dets(("vegetable", 100, 100, 150, 150, 0.8)), 0.0)
    b = tr.update(dets(("raw_meat", 101, 100, 151, 150, 0.7)), 0.2)
    assert b.data["class_name"].tolist() == ["raw_meat"] and b.tracker_id[0] != a.tracker_id[0]


def test_without_a_label_map_every_label_stays() -> None:
    out = Tracker().update(
        dets(("vegetable", 100, 100, 150, 150, 0.9), ("raw_seafood", 101, 100, 151, 151, 0.8)), 0.0
    )
    assert len(out) == 2


def test_detector_rate_is_capped_while_things_keep_moving() -> None:
    gate = MotionGate(MotionSection(forced_interval_s=100, max_detect_fps=2))
    runs = [gate.check(_scene(100 + 10 * n), n / 6) for n in range(12)]  # moving every frame, 6 fps
    assert [round(n / 6, 2) for n, r in enumerate(runs) if r] == [0.0, 0.5, 1.0, 1.5]
    assert gate.frames_skipped == 8


def test_a_due_alarm_lifts_the_rate_cap() -> None:
    # The alarm decision should see every frame that moved once an episode has lasted its minimum duration.
    gate = MotionGate(MotionSection(forced_interval_s=100, max_detect_fps=2))
    due = [1.0 <= n / 6 < 2.0 for n in range(18)]  # an episode's alarm is due from 1 s to 2 s
    runs = [gate.check(_scene(100 + 10 * n), n / 6, alarm_due=due[n]) for n in range(18)]
    detected = [round(n / 6, 2) for n, r in enumerate(runs) if r]
    assert detected == [0.0, 0.5, 1.0, 1.17, 1.33, 1.5, 1.67, 1.83, 2.33, 2.83]
