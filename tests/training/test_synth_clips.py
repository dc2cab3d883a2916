"""Synthetic clips: H.264 that OpenCV decodes, ground truth consistent with the rendered scene states."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from training.synth.clips import (
    MIN_EPISODE_S,
    clip_rng,
    clip_states,
    events_from_states,
    make_script,
    violations,
    write_clips,
)
from training.synth.palette import DEFAULT_BOARD_FOOD
from training.synth.render import Renderer, min_visible

FPS = 10.0
SEED = 0  # with clean_fraction 0.5: clip 0 is clean, clip 1 has violations


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clips")
    write_clips(out, 2, SEED, fps=FPS, clean_fraction=0.5, progress=False)
    return out


def _script(index: int):
    rng = clip_rng(SEED, index)
    clean = bool(rng.random() < 0.5)
    return make_script(rng, clean), clean


def test_index_and_ground_truth_files(clips: Path) -> None:
    index = json.loads((clips / "index.json").read_text())
    assert [c["video"] for c in index["clips"]] == ["clip_0_000.mp4", "clip_0_001.mp4"]
    assert [c["clean"] for c in index["clips"]] == [True, False]
    for c in index["clips"]:
        gt = json.loads((clips / c["truth"]).read_text())
        assert gt["camera"].startswith("cam") and gt["fps"] == FPS and gt["seed"] == SEED
        assert (gt["width"], gt["height"]) == (640, 360)
        assert 10 <= gt["duration_s"] <= 40


@pytest.mark.parametrize("name", ["clip_0_000", "clip_0_001"])
def test_clip_decodes_as_h264_with_the_expected_frames(clips: Path, name: str) -> None:
    gt = json.loads((clips / f"{name}.json").read_text())
    with av.open(str(clips / f"{name}.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == pytest.approx(FPS)
    cap = cv2.VideoCapture(str(clips / f"{name}.mp4"))
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        assert frame.shape == (360, 640, 3)
        n += 1
    cap.release()
    assert n == gt["frames"]


def test_violation_clip_events_match_the_scene_states(clips: Path) -> None:
    gt = json.loads((clips / "clip_0_001.json").read_text())
    script, clean = _script(1)
    assert not clean
    states = clip_states(script, FPS)
    renderer = Renderer()
    visible = [renderer.render(st, drop_occluded=False).visible for st in states]
    assert gt["events"] == events_from_states(states, FPS, visible)
    assert [{k: v for k, v in e.items() if not k.startswith("visible")} for e in gt["events"]] == (
        events_from_states(states, FPS)
    )
    assert {e["rule"] for e in gt["events"]} == {"board_misuse", "stacked_containers"}
    for e in gt["events"]:
        assert e["end"] - e["start"] >= MIN_EPISODE_S - 1e-6
        k0, k1 = round(e["start"] * FPS), round(e["end"] * FPS)
        assert not any(key[0] == e["rule"] for key in violations(states[k0 - 1]))
        mid = violations(states[(k0 + k1) // 2])
        keys = [key for key in mid if key[0] == e["rule"]]
        assert keys, f"no {e['rule']} in the middle of {e}"
        if e["rule"] == "board_misuse":
            board, food = states[(k0 + k1) // 2].by_id(keys[0][1]), states[(k0 + k1) // 2].by_id(keys[0][2])
            assert board.style["colour"] == e["board_colour"] and food.class_name == e["food"]
            assert DEFAULT_BOARD_FOOD[e["board_colour"]] != e["food"]
        # the violating things are actually seen during the episode (hands occlude only briefly)
        seen = [
            min(renderer.render(states[k], drop_occluded=False).visible.get(i, 0.0) for i in keys[0][1:])
            for k in np.linspace(k0, k1 - 1, 6).astype(int)
        ]
        assert sum(v >= 0.3 for v in seen) >= 4, seen
        # visible_start: the episode's first frame in which each of its objects shows enough to be labelled
        k_seen = round(e["visible_start"] * FPS)
        assert k0 <= k_seen < k1 and 0 < e["visible_s"] <= e["end"] - e["start"]
        ids = keys[0][1:]
        labelable = [
            all(visible[k][i] >= min_visible(states[k].by_id(i)) for i in ids) for k in range(k0, k1)
        ]
        assert labelable[k_seen - k0] and not any(labelable[: k_seen - k0])
        assert e["visible_s"] == round(sum(labelable) / FPS, 3)


def test_clean_clip_has_no_violation_and_shows_nesting(clips: Path) -> None:
    gt = json.loads((clips / "clip_0_000.json").read_text())
    script, clean = _script(0)
    assert clean and gt["events"] == []
    states = clip_states(script, FPS)
    assert not any(violations(s) for s in states)
    nested = any(
        o.kind == "container" and o.parent is not None and o.parent in {c.id for c in s.objects}
        for s in states
        for o in s.objects
    )
    assert nested


def test_objects_come_and_go_in_a_hand() -> None:
    script, _ = _script(1)
    states = clip_states(script, FPS)
    for prev, cur in itertools.pairwise(states):
        arms = {o.id for o in cur.objects if o.kind == "arm"}
        prev_arms = {o.id for o in prev.objects if o.kind == "arm"}
        before, now = {o.id: o for o in prev.objects}, {o.id: o for o in cur.objects}
        for oid in now.keys() - before.keys():
            if now[oid].kind != "arm":
                assert now[oid].parent in arms, f"object {oid} appeared without a hand"
        for oid in before.keys() - now.keys():
            if before[oid].kind != "arm":
                assert before[oid].parent in prev_arms, f"object {oid} vanished without a hand"


def test_scripts_are_deterministic_and_seed_dependent() -> None:
    a, b = _script(1)[0], _script(1)[0]
    assert events_from_states(clip_states(a, FPS), FPS) == events_from_states(clip_states(b, FPS), FPS)
    img_a = Renderer().render(a.state_at(3.0), drop_occluded=False).image
    img_b = Renderer().render(b.state_at(3.0), drop_occluded=False).image
    assert np.array_equal(img_a, img_b)
    other = make_script(clip_rng(SEED + 1, 1), False)
    assert events_from_states(clip_states(other, FPS), FPS) != events_from_states(clip_states(a, FPS), FPS)
