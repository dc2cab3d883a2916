"""Synthetic stills: determinism, exact labels (tight, visible, complete), dataset layout and balance."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from training.classes import CLASS_NAMES
from training.synth.clips import clip_rng, make_script, violations
from training.synth.render import Renderer, min_visible
from training.synth.stills import make_still, write_dataset


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("data.yaml",)
    }


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a", 4, seed=3, progress=False)
    b = write_dataset(tmp_path / "b", 4, seed=3, progress=False)
    c = write_dataset(tmp_path / "c", 4, seed=4, progress=False)
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert a["fingerprint"] == b["fingerprint"] != c["fingerprint"]
    imgs_a = [p.read_bytes() for p in sorted((tmp_path / "a" / "images").rglob("*.jpg"))]
    imgs_c = [p.read_bytes() for p in sorted((tmp_path / "c" / "images").rglob("*.jpg"))]
    assert all(x != y for x, y in zip(imgs_a, imgs_c, strict=True))


def test_image_i_does_not_depend_on_dataset_size() -> None:
    for i in (0, 2):
        x, y = make_still(9, i), make_still(9, i)
        assert np.array_equal(x.image, y.image) and x.labels == y.labels


@pytest.mark.parametrize("source", ["scene", "clip", "hands"])
@pytest.mark.parametrize("index", range(12))
def test_labels_are_tight_visible_and_complete(index: int, source: str) -> None:
    still = make_still(21, index, source=source)
    r = still.rendered
    labelled = {lb.object_id for lb in still.labels}
    classed = {o.id for o in r.state.objects if o.class_name is not None}
    # nothing of a labelled class is visible without a label
    seen = set(np.unique(r.owner).tolist()) - {-1}
    assert seen & classed <= labelled
    for lb in still.labels:
        ys, xs = np.nonzero(r.owner == lb.object_id)
        assert len(xs), f"label {lb} has no visible pixels"
        # the box covers the visible mask and is tight to it (within 2 px)
        assert lb.x0 <= xs.min() and lb.y0 <= ys.min() and lb.x1 >= xs.max() + 1 and lb.y1 >= ys.max() + 1
        assert xs.min() - lb.x0 <= 2 and ys.min() - lb.y0 <= 2
        assert lb.x1 - xs.max() - 1 <= 2 and lb.y1 - ys.max() - 1 <= 2
        obj = r.state.by_id(lb.object_id)
        assert r.visible[lb.object_id] >= min_visible(obj)
        assert CLASS_NAMES[lb.class_id] == obj.label


def test_unknown_source_is_named() -> None:
    with pytest.raises(ValueError, match=r"'frames'.*scene, clip"):
        make_still(1, 0, source="frames")


def _violation_parts(seed: int, index: int, rule: str, t_from: float) -> tuple:
    """The first state at or after ``t_from`` (steps of 1/12 s) of clip ``index`` showing ``rule``, and the
    ids of its parts."""
    script = make_script(clip_rng(seed, index), clean=False)
    t = t_from
    while t < script.duration_s:
        state = script.state_at(t)
        keys = [k for k in violations(state) if k[0] == rule]
        if keys:
            return state, keys[0][1:]
        t += 1 / 12
    raise AssertionError(f"no {rule} in clip {index} of seed {seed}")


def test_a_stack_whose_lower_container_shows_only_its_rim_keeps_both_labels() -> None:
    """Tuning clip 0 (seed 7200): the lower container is ~a quarter visible under the upper one. At a
    visibility floor of 0.5 it was dropped from training stills, so the model never learnt such stacks."""
    state, (lower, upper) = _violation_parts(7200, 0, "stacked_containers", 0.0)
    r = Renderer().render(state)
    assert r.visible[lower] < 0.5
    assert {lower, upper} <= {lb.object_id for lb in r.labels}


def test_food_under_the_glove_that_put_it_down_is_labelled() -> None:
    """Tuning clip 2 (seed 7200): on its first frame on the board a third of the food shows under the glove.
    At a visibility floor of 0.5 it vanished from training stills; it is labelled now."""
    state, (_board, food) = _violation_parts(7200, 2, "board_misuse", 0.0)
    assert any(o.kind == "arm" for o in state.objects)
    assert 0.25 <= Renderer().render(state, drop_occluded=False).visible[food] < 0.5
    assert food in {lb.object_id for lb in Renderer().render(state).labels}


def test_hands_stills_show_a_hand_over_food_on_a_board() -> None:
    """``hands``: every still has an arm, and more of them than of ``clip`` stills show a labelled food
    partly hidden (the glove or a chopping hand over it), the frames that delay board alarms."""

    def partly_hidden_food(source: str, index: int) -> bool:
        r = make_still(33, index, source=source).rendered
        labelled = {lb.object_id for lb in r.labels}
        arms = [o for o in r.state.objects if o.kind == "arm"]
        assert arms or source != "hands"
        return any(o.kind == "food" and o.id in labelled and r.visible[o.id] < 0.95 for o in r.state.objects)

    hands = sum(partly_hidden_food("hands", i) for i in range(24))
    clip = sum(partly_hidden_food("clip", i) for i in range(24))
    assert hands >= 10 and hands > clip, (hands, clip)


def test_dataset_layout_yaml_preview_and_manifest(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    manifest = write_dataset(out, 10, seed=5, val_fraction=0.2, progress=False)
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert [data["names"][i] for i in range(len(CLASS_NAMES))] == list(CLASS_NAMES)
    assert (out / data["train"]).is_dir() and (out / data["val"]).is_dir()
    assert len(list((out / "images" / "train").glob("*.jpg"))) == 8
    assert len(list((out / "labels" / "val").glob("*.txt"))) == 2
    assert (out / "preview.png").stat().st_size > 10_000
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest and on_disk["seed"] == 5 and on_disk["count"] == 10
    total = 0
    for txt in (out / "labels").rglob("*.txt"):
        for line in txt.read_text().splitlines():
            cls, cx, cy, w, h = line.split()
            assert 0 <= int(cls) < len(CLASS_NAMES)
            vals = [float(v) for v in (cx, cy, w, h)]
            assert all(0 <= v <= 1 for v in vals) and vals[2] > 0 and vals[3] > 0
            total += 1
    assert total == sum(manifest["instances"].values()) > 0


def test_every_class_is_common_and_objects_are_big_enough() -> None:
    images_with = dict.fromkeys(range(len(CLASS_NAMES)), 0)
    shorts = []
    n = 30
    for i in range(n):
        labels = make_still(77, i).labels
        for c in {lb.class_id for lb in labels}:
            images_with[c] += 1
        shorts += [min(lb.x1 - lb.x0, lb.y1 - lb.y0) for lb in labels]
    rare = {CLASS_NAMES[c]: k for c, k in images_with.items() if k < n / 6}
    assert not rare, f"classes in too few images: {rare}"
    assert np.percentile(shorts, 10) >= 26


@pytest.mark.parametrize(("clean", "expected"), [(True, "container_empty"), (False, "container")])
def test_containers_are_labelled_by_whether_they_hold_food(clean: bool, expected: str) -> None:
    # A clean clip's container pair ends nested and empty; a violation clip's stacked pair holds food.
    script = make_script(clip_rng(3, 1), clean=clean)
    rendered = Renderer().render(script.state_at(script.duration_s / 2))
    containers = [o for o in rendered.state.objects if o.kind == "container"]
    assert containers and all(bool(o.style["contents"]) is not clean for o in containers)
    names = {CLASS_NAMES[lb.class_id] for lb in rendered.labels if lb.object_id in {o.id for o in containers}}
    assert names == {expected}


def test_clip_stills_render_without_pyav(tmp_path: Path) -> None:
    """Only encoding a clip needs PyAV; training machines without it still render clip-frame datasets."""
    code = f"""
import sys
sys.modules["av"] = None  # any import of av now raises ImportError
from training.synth.stills import write_dataset
write_dataset({str(tmp_path / "d")!r}, 2, seed=5, val_fraction=0, source="clip", progress=False)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(list((tmp_path / "d" / "images").rglob("*.jpg"))) == 2
