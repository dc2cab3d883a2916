"""Rule geometry on hand-made detections: pure and fast."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from edge_agent.config import DEFAULT_PALETTE
from edge_agent.rules import build_rules, rule_class
from edge_agent.rules.base import LabelMap, is_active, points_in_polygon
from edge_agent.rules.stacked_containers import Params, stacked_pairs

from .helpers import LABEL_MAP, LABELS, T0, dets, rule_cfg

WH = (640, 360)


def _board(cfg_kw: dict | None = None):
    (rule,) = build_rules([rule_cfg("board_misuse", **(cfg_kw or {}))], LABEL_MAP, DEFAULT_PALETTE)
    return rule


def test_meat_on_blue_board_is_a_hit_with_colour_and_food() -> None:
    d = dets(("board_blue", 100, 100, 300, 250, 0.9, 1), ("raw_meat", 150, 140, 200, 180, 0.8, 2))
    (hit,) = _board().evaluate(d, WH, T0)
    assert hit.details == {"board_colour": "blue", "food": "raw_meat"}
    assert hit.key == (1, "raw_meat")
    assert hit.score == pytest.approx(0.8)
    assert hit.indices == (0, 1)


@pytest.mark.parametrize(
    ("board", "food"),
    [("board_red", "raw_meat"), ("board_green", "vegetable"), ("board_blue", "raw_seafood")],
)
def test_allowed_food_is_no_hit(board: str, food: str) -> None:
    assert _board().evaluate(dets((board, 100, 100, 300, 250), (food, 150, 140, 200, 180)), WH, T0) == []


def test_food_beside_the_board_is_no_hit() -> None:
    d = dets(("board_yellow", 100, 100, 300, 250), ("raw_meat", 320, 140, 380, 180))
    assert _board().evaluate(d, WH, T0) == []


def test_anchor_bottom_versus_centre() -> None:
    # The food's centre is above the board, its bottom edge on it.
    d = dets(("board_green", 100, 100, 300, 250), ("raw_meat", 150, 60, 200, 120))
    assert _board().evaluate(d, WH, T0) == []
    assert len(_board({"anchor": "bottom"}).evaluate(d, WH, T0)) == 1


def test_smallest_board_under_the_food_decides() -> None:
    d = dets(
        ("board_red", 0, 0, 600, 350), ("board_green", 100, 100, 300, 250), ("raw_meat", 150, 140, 200, 180)
    )
    (hit,) = _board().evaluate(d, WH, T0)
    assert hit.details["board_colour"] == "green"


def test_palette_comes_from_config() -> None:
    (rule,) = build_rules([rule_cfg("board_misuse")], LABEL_MAP, {"blue": ["raw_seafood", "raw_meat"]})
    d = dets(("board_blue", 100, 100, 300, 250), ("raw_meat", 150, 140, 200, 180))
    assert rule.evaluate(d, WH, T0) == []


def test_two_items_of_one_category_on_one_board_are_one_hit() -> None:
    d = dets(
        ("board_blue", 100, 100, 300, 250, 0.9, 1),
        ("raw_meat", 110, 110, 150, 150, 0.6, 2),
        ("raw_meat", 200, 200, 240, 240, 0.7, 3),
    )
    (hit,) = _board().evaluate(d, WH, T0)
    assert hit.indices == (0, 1, 2) and hit.score == pytest.approx(0.7)


def test_roi_keeps_only_objects_whose_foot_is_inside() -> None:
    rule = _board({"roi": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]})
    left = dets(("board_blue", 10, 100, 200, 250), ("raw_meat", 50, 140, 100, 180))
    right = dets(("board_blue", 400, 100, 600, 250), ("raw_meat", 450, 140, 500, 180))
    assert rule.evaluate(left, WH, T0) == []
    assert len(rule.evaluate(right, WH, T0)) == 1


def test_active_hours_including_a_span_past_midnight() -> None:
    local = datetime(2026, 11, 29, 23, 30).astimezone()
    spans = _board({"active_hours": ["22:00-06:00"]})._spans
    assert is_active(spans, local)
    assert not is_active(spans, local.replace(hour=12))
    assert is_active([], local)
    rule = _board({"active_hours": ["00:00-00:01"]})
    d = dets(("board_blue", 100, 100, 300, 250), ("raw_meat", 150, 140, 200, 180))
    assert rule.evaluate(d, WH, datetime(2026, 11, 29, 12, 0).astimezone().astimezone(UTC)) == []


def test_unchanged_detections_reuse_the_hits_but_active_hours_still_apply(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Frames the motion gate skipped carry the same detections object: no second search, same hits."""
    rule = _board({"active_hours": ["08:00-20:00"]})
    calls: list[int] = []
    find = rule.find
    monkeypatch.setattr(rule, "find", lambda d, c, wh: calls.append(len(d)) or find(d, c, wh))
    d = dets(("board_blue", 100, 100, 300, 250), ("raw_meat", 150, 140, 200, 180))
    noon, night = (datetime(2026, 11, 29, h, 0).astimezone() for h in (12, 23))
    first = rule.evaluate(d, WH, noon)
    assert rule.evaluate(d, WH, noon) == first and len(first) == 1
    assert rule.evaluate(d, WH, night) == []
    moved = dets(("board_blue", 100, 100, 300, 250), ("raw_meat", 160, 140, 210, 180))
    assert len(rule.evaluate(moved, WH, noon)) == 1
    assert calls == [2, 2]


def test_points_in_polygon() -> None:
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    pts = np.array([[0.5, 0.5], [1.5, 0.5], [-0.1, 0.2]])
    assert points_in_polygon(pts, square).tolist() == [True, False, False]


# --- stacked containers ------------------------------------------------------------------------------------

P = Params(min_rise=0)  # as the rule sets it with a model of one container class


def test_stacked_pair_found() -> None:
    lower = [100, 200, 300, 300]
    upper = [110, 130, 290, 230]  # bottom edge 30 px into the lower box's top, rises 70 px above it
    assert stacked_pairs(np.array([upper, lower], float), P) == [(0, 1)]


def test_deep_container_seen_from_a_tilted_camera_is_stacked() -> None:
    # Boxes the shipped model found on a stacked pair in a synthetic clip: the lower container's opening
    # reaches far down its box, so the upper one's bottom edge sits at 68 % of the lower's height.
    upper, lower = [17, 9, 133, 122], [20, 51, 142, 156]
    assert stacked_pairs(np.array([upper, lower], float), P) == [(0, 1)]


def test_small_container_on_a_wide_basin_is_stacked() -> None:
    # Boxes model 0.2.0 found on a held-out clip (7001-008, 9.5 s): the upper box rises only 16 px (0.2 of
    # its height) above the wide lower basin's; the former min_rise of 0.3 missed this stack.
    upper, lower = [230, 37, 345, 116], [197, 53, 371, 160]
    assert stacked_pairs(np.array([upper, lower], float), P) == [(0, 1)]


def test_side_by_side_is_not_stacked() -> None:
    assert stacked_pairs(np.array([[100, 200, 300, 300], [310, 190, 500, 300]], float), P) == []


def test_nested_is_not_stacked() -> None:
    assert stacked_pairs(np.array([[100, 200, 300, 300], [120, 210, 280, 290]], float), P) == []


def test_wider_container_behind_is_not_stacked() -> None:
    # A wider container just behind the lower one shows its body beside it down to 90 % of its height:
    # behind it on the counter, not on it.
    assert stacked_pairs(np.array([[80, 170, 320, 290], [100, 200, 300, 300]], float), P) == []
    assert stacked_pairs(np.array([[110, 170, 340, 290], [100, 200, 300, 300]], float), P) == []


@pytest.mark.parametrize(
    ("upper", "lower"),
    [
        # Boxes model 0.5.0 found on tuning clips (seed 7200) whose lower container shows only its rim: the
        # upper one sits in its opening, bottom edge at 87 % (clip 000, lower box cut by the frame's edge)
        # and 92 % (clip 008) of the lower box. The 0.85 band alone missed both.
        ([123, 217, 262, 345], [119, 246, 274, 359]),
        ([216, 58, 327, 162], [206, 68, 351, 170]),
    ],
)
def test_container_sitting_in_the_others_opening_is_stacked(upper: list[int], lower: list[int]) -> None:
    assert stacked_pairs(np.array([upper, lower], float), P) == [(0, 1)]


def test_stack_running_off_the_bottom_of_the_picture_is_stacked() -> None:
    # Boxes model 0.5.0 found on held-out clip 7001-010 (360 px high, 12 s): both containers run off the
    # bottom, so the upper box ends at the border too, deeper than any band; this stack was missed.
    upper, lower = [207, 200, 383, 359], [181, 235, 383, 360]
    assert stacked_pairs(np.array([upper, lower], float), P, frame_h=360) == [(0, 1)]
    assert stacked_pairs(np.array([upper, lower], float), P) == []  # bottoms taken as seen
    # Cut off too, but nested (its top below the other's) or jutting out beside it: not stacked.
    assert stacked_pairs(np.array([[200, 250, 370, 359], lower], float), P, frame_h=360) == []
    assert stacked_pairs(np.array([[150, 200, 330, 359], lower], float), P, frame_h=360) == []


def test_stacked_rule_keys_by_tracks_and_ignores_non_containers() -> None:
    (rule,) = build_rules([rule_cfg("stacked_containers")], LABEL_MAP, DEFAULT_PALETTE)
    d = dets(
        ("container", 110, 130, 290, 230, 0.7, 5),
        ("container", 100, 200, 300, 300, 0.9, 6),
        ("board_red", 110, 130, 290, 230, 0.9, 7),
    )
    (hit,) = rule.evaluate(d, WH, T0)
    assert hit.key == (5, 6) and hit.score == pytest.approx(0.7)
    assert hit.anchor.tolist() == [100, 130, 300, 300]


@pytest.mark.parametrize(
    ("upper", "lower", "food_below", "stacked"),
    [
        ("container_empty", "container_empty", True, False),  # a nested pair of empty bowls
        ("container", "container_empty", True, False),  # food set in an empty container
        ("container_empty", "container", True, True),  # an empty base on the food below
        ("container", "container", True, True),
        ("container_empty", "container_empty", False, True),
    ],
)
def test_a_pair_stacks_only_on_food_below(upper: str, lower: str, food_below: bool, stacked: bool) -> None:
    # A bowl in (or on) a wider one, its top just above the other's: a nested pair and a tight stack
    # have this geometry to within box jitter, so only what the detector reads in them tells them apart.
    (rule,) = build_rules([rule_cfg("stacked_containers", food_below=food_below)], LABEL_MAP, DEFAULT_PALETTE)
    d = dets((upper, 262, 126, 338, 176, 0.8, 1), (lower, 244, 127, 356, 192, 0.9, 2))
    assert len(rule.evaluate(d, WH, T0)) == int(stacked)


def test_a_container_set_down_in_food_is_stacked_once_the_model_reads_empty_containers() -> None:
    # Model boxes of tuning clip 7400-012: a bowl set on the food in a wider one, its top 3 px below the
    # other's. Read as nested by a model with one container class; a base in food once empties are read.
    d = dets(("container", 133, 160, 219, 233, 0.95, 1), ("container", 126, 157, 250, 256, 0.92, 2))
    one_class = LabelMap([x for x in LABELS if x.name != "container_empty"])
    for labels, food_below, stacked in (
        (LABEL_MAP, True, True),
        (one_class, True, False),
        (LABEL_MAP, False, False),
    ):
        (rule,) = build_rules(
            [rule_cfg("stacked_containers", food_below=food_below)], labels, DEFAULT_PALETTE
        )
        assert len(rule.evaluate(d, WH, T0)) == int(stacked)
    (rule,) = build_rules([rule_cfg("stacked_containers", min_rise=0)], LABEL_MAP, DEFAULT_PALETTE)
    assert rule.evaluate(d, WH, T0) == []  # a min_rise that is set holds


def test_a_container_split_into_several_boxes_makes_one_stack() -> None:
    (rule,) = build_rules([rule_cfg("stacked_containers")], LABEL_MAP, DEFAULT_PALETTE)
    # Boxes model 0.5.0 found on clip 7002-003 (12 s): a tray on a wider one, plus a box over the lower
    # one's rim (IoU 0.68 with it, under NMS's 0.7) that sits "on" it too. Three stacked pairs, one stack.
    d = dets(
        ("container", 508, 52, 639, 150, 0.86, 1),
        ("container", 479, 93, 639, 222, 0.84, 2),
        ("container", 487, 87, 640, 190, 0.53, 3),
    )
    assert len(stacked_pairs(d.xyxy, P, frame_h=360)) == 3
    (hit,) = rule.evaluate(d, (640, 360), T0)
    assert hit.key == (1, 2)
    # Two containers on two others are two stacks.
    boxes = [(110, 130, 290, 230), (100, 200, 300, 300), (410, 130, 590, 230), (400, 200, 600, 300)]
    two = dets(*[("container", *box, 0.9, i) for i, box in enumerate(boxes)])
    assert sorted(h.key for h in rule.evaluate(two, (640, 360), T0)) == [(0, 1), (2, 3)]


def test_unknown_rule_type_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: board_misuse, stacked_containers"):
        rule_class("no_gloves")


def test_board_misuse_still_hidden_while_its_board_holds_no_other_food() -> None:
    """A hand over the meat on the blue board: the board alone, or with more meat, is consistent with the
    meat still lying there; another food read confidently on it (the meat was a misread), another board, or
    no board in view is not."""
    rule, blue = _board(), np.array([100, 100, 300, 250], float)
    meat = {"board_colour": "blue", "food": "raw_meat"}
    board = ("board_blue", 102, 100, 300, 252)

    def hidden(*rows: tuple) -> bool:
        return rule.still_hidden(dets(*rows), blue, meat, WH, T0)

    assert hidden(board)
    assert hidden(board, ("raw_meat", 250, 140, 290, 180))  # more of the same wrong food
    assert not hidden(board, ("raw_seafood", 150, 140, 200, 180))  # allowed: the meat was a misread?
    assert not hidden(board, ("cooked_food", 150, 140, 200, 180))  # read as another wrong food
    # held-out 7001-004: a hand over cooked food on the blue board read as raw seafood at 0.59-0.68; a
    # reading below the confidence a hidden alarm needs (hidden_alarm_min_score) contradicts nothing
    assert hidden(board, ("raw_seafood", 150, 140, 200, 180, 0.68))
    assert not hidden(("board_green", 320, 100, 520, 250))
    assert not hidden()
    # food on another board does not count
    assert hidden(board, ("board_green", 320, 100, 520, 250), ("vegetable", 350, 140, 400, 180))


def test_stacked_containers_never_alarm_hidden() -> None:
    (rule,) = build_rules([rule_cfg("stacked_containers")], LABEL_MAP, DEFAULT_PALETTE)
    box = np.array([100, 100, 300, 250.0])
    assert not rule.still_hidden(dets(("container", 100, 100, 300, 250)), box, {"containers": 2}, WH, T0)
