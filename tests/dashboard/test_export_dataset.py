"""Dataset export: hand-built reviewed alerts (confirmed, false positive, unclear; two restaurants) stored
through the ingest path and reviewed through the API, exported by the CLI and by the ml page's zip."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from brightkitchen.cli import app
from brightkitchen.contract import VIOLATION_BOXES, encode, topic_for
from brightkitchen.datasets import assign_splits, group_hash, image_size
from dashboard.dataset_export import alert_labels

DAY1 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DAY2 = DAY1 + timedelta(days=1)
BOARD = {"label": "board_green", "score": 0.9, "box": {"x1": 0.1, "y1": 0.2, "x2": 0.6, "y2": 0.8}}
MEAT = {"label": "raw_meat", "score": 0.8, "box": {"x1": 0.2, "y1": 0.3, "x2": 0.4, "y2": 0.5}}
UPPER = {"label": "container", "score": 0.7, "box": {"x1": 0.3, "y1": 0.1, "x2": 0.5, "y2": 0.4}}
LOWER = {"label": "container", "score": 0.75, "box": {"x1": 0.25, "y1": 0.3, "x2": 0.55, "y2": 0.7}}
CONTEXT_MEAT = {"label": "raw_meat", "score": 0.7, "box": {"x1": 0.7, "y1": 0.6, "x2": 0.8, "y2": 0.7}}
CONTEXT_BOX = {"label": "container", "score": 0.7, "box": {"x1": 0.62, "y1": 0.1, "x2": 0.9, "y2": 0.5}}
PERSON = {"label": "person", "score": 0.6, "box": {"x1": 0.7, "y1": 0.1, "x2": 0.9, "y2": 0.9}}
BOARD_LINE = "2 0.350000 0.500000 0.500000 0.600000"
MEAT_LINE = "5 0.300000 0.400000 0.200000 0.200000"

# name: restaurant, start, rule, detections, verdict (None: unreviewed), reason, clean snapshot?
ALERTS: dict[str, tuple[str, datetime, str, list[dict], str | None, str, bool]] = {
    "confirmed": ("r-a", DAY1, "board_misuse", [BOARD, MEAT, PERSON], "confirmed", "", True),
    "fp_relabel_food": (
        "r-a",
        DAY1 + timedelta(hours=2),
        "board_misuse",
        [BOARD, MEAT],
        "false_positive",
        "a carrot in poor light; relabel: vegetable",
        True,
    ),
    "fp_stack": (
        "r-a",
        DAY2,
        "stacked_containers",
        [UPPER, LOWER],
        "false_positive",
        "a lid, not a box",
        True,
    ),
    "fp_relabel_board": (
        "r-b",
        DAY1,
        "board_misuse",
        [MEAT, BOARD],
        "false_positive",
        "the board is red under this lamp, relabel=board_red",
        True,
    ),
    "fp_remove_food": (
        "r-b",
        DAY2,
        "board_misuse",
        [BOARD, MEAT, CONTEXT_MEAT, CONTEXT_BOX],  # the last two: elsewhere in the frame
        "false_positive",
        "a dish cloth",
        True,
    ),
    "unclear": ("r-b", DAY1, "board_misuse", [BOARD, MEAT], "unclear", "cannot tell", True),
    "unreviewed": ("r-b", DAY1, "board_misuse", [BOARD, MEAT], None, "", True),
    "no_clean": ("r-a", DAY1, "board_misuse", [BOARD, MEAT], "confirmed", "", False),
}
EXPECTED_LINES = {
    "confirmed": [BOARD_LINE, MEAT_LINE],
    "fp_relabel_food": [BOARD_LINE, "7 0.300000 0.400000 0.200000 0.200000"],
    "fp_stack": ["9 0.400000 0.500000 0.300000 0.400000"],
    "fp_relabel_board": [MEAT_LINE, "0 0.350000 0.500000 0.500000 0.600000"],
    "fp_remove_food": [
        BOARD_LINE,
        "5 0.750000 0.650000 0.100000 0.100000",
        "9 0.760000 0.300000 0.280000 0.400000",
    ],
}
GROUPS = {
    "confirmed": "r-a/cam-1/2026-11-20",
    "fp_relabel_food": "r-a/cam-1/2026-11-20",
    "fp_stack": "r-a/cam-1/2026-11-21",
    "fp_relabel_board": "r-b/cam-1/2026-11-20",
    "fp_remove_food": "r-b/cam-1/2026-11-21",
}


def _jpeg(seed: int) -> bytes:
    image = np.full((90, 160, 3), seed * 20 % 255, np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


@pytest.fixture
def reviewed(persister, tenants, login, make_event, make_media) -> dict[str, Any]:
    """The alerts of ``ALERTS`` stored through the ingest path and reviewed through the API."""
    inspector = login("admin")
    ids = {}
    for n, (name, (rid, start, rule, dets, verdict, reason, clean)) in enumerate(ALERTS.items()):
        jpeg = _jpeg(n)
        kind = "snapshot_clean" if clean else "snapshot"
        ref = {
            "kind": kind,
            "content_type": "image/jpeg",
            "sha256": hashlib.sha256(jpeg).hexdigest(),
            "size_bytes": len(jpeg),
        }
        details = {"board_colour": "green", "food": "raw_meat"}
        if len(dets) == 4:
            details[VIOLATION_BOXES] = 2
        ev = make_event(
            details=details,
            restaurant=rid,
            rule=rule,
            detections=dets,
            started_at=start,
            sent_at=start + timedelta(seconds=5),
            media=[ref],
            snapshot=None,
        )
        for msg in (ev, make_media(ev, jpeg, kind)):
            assert persister.handle(topic_for(msg), encode(msg)).outcome == "stored"
        if verdict:
            r = inspector.post(
                f"/api/v1/alerts/{ev.event_id}/review",
                json={"verdict": verdict, "reason": reason},
                headers={"X-CSRF-Token": inspector.csrf},
            )
            assert r.status_code == 200, r.text
        ids[name] = ev.event_id
    return ids


def _export_cli(db_config, tmp_path: Path, *args: str) -> Path:
    cfg = tmp_path / "dashboard.yaml"
    cfg.write_text(yaml.safe_dump(db_config.model_dump(mode="json", exclude_none=True)))
    out = tmp_path / "bk-dataset"
    result = CliRunner().invoke(
        app,
        ["dashboard", "export-dataset", "--config", str(cfg), "--out", str(out), *args],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "5 images" in result.output
    assert "export: 100%" in result.output and "5/5" in result.output  # the bar, on stderr
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_export_writes_exactly_the_expected_dataset(reviewed, db_config, tmp_path) -> None:
    out = _export_cli(db_config, tmp_path)
    splits = assign_splits(GROUPS.values(), 0.2)
    assert "val" in splits.values() and "train" in splits.values()
    sheet = json.loads((out / "datasheet.json").read_text())
    by_event = {f["event_id"]: f for f in sheet["files"]}
    # unclear, unreviewed and no_clean are left out
    assert set(by_event) == {str(reviewed[n]) for n in EXPECTED_LINES}
    for name, lines in EXPECTED_LINES.items():
        entry = by_event[str(reviewed[name])]
        split = splits[GROUPS[name]]
        stem = f"{ALERTS[name][0]}.cam-1.{ALERTS[name][1]:%Y%m%d}.{reviewed[name].hex}"
        assert entry["image"] == f"images/{split}/{stem}.jpg"
        assert (out / "labels" / split / f"{stem}.txt").read_text().splitlines() == lines, name
        assert image_size((out / entry["image"]).read_bytes()) == (160, 90)
    assert sorted(p.name for p in (out / "images").rglob("*.jpg")) == sorted(
        Path(f["image"]).name for f in sheet["files"]
    )
    # a whole group is on one side
    for group, counts in sheet["groups"].items():
        assert counts[splits[group]] == counts["total"], group
    assert sheet["images"]["total"] == 5 and sheet["hard_negatives"] == 4
    assert (sheet["boxes_removed"], sheet["boxes_relabelled"], sheet["context_boxes"]) == (2, 2, 2)
    assert sheet["skipped"] == {
        "unclear": 1,
        "no_clean_snapshot": 1,
        "unknown_label_boxes": 1,
        "bad_relabel": 0,
    }
    assert (
        sheet["per_verdict"]["confirmed"]["total"] == 1
        and sheet["per_verdict"]["false_positive"]["total"] == 4
    )
    assert sheet["per_restaurant"]["r-a"]["total"] == 3 and sheet["per_restaurant"]["r-b"]["total"] == 2
    assert {k: v["total"] for k, v in sheet["per_class"].items() if v["total"]} == {
        "board_red": 1,
        "board_green": 3,
        "raw_meat": 3,
        "vegetable": 1,
        "container": 2,
    }
    md = (out / "DATASHEET.md").read_text()
    assert "| board_green |" in md and "| r-b |" in md and "| false_positive |" in md
    assert yaml.safe_load((out / "data.yaml").read_text())["names"][9] == "container"

    coco = json.loads((out / "coco" / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]][:2] == ["board_red", "board_blue"]
    stack = next(i for i in coco["images"] if i["event_id"] == str(reviewed["fp_stack"]))
    assert (stack["width"], stack["height"], stack["verdict"]) == (160, 90, "false_positive")
    (ann,) = [a for a in coco["annotations"] if a["image_id"] == stack["id"]]
    assert ann["category_id"] == 10 and ann["bbox"] == pytest.approx([40.0, 27.0, 48.0, 36.0])
    assert len(coco["annotations"]) == 10

    tasks = json.loads((out / "label_studio" / "tasks.json").read_text())
    task = next(t for t in tasks if t["data"]["event_id"] == str(reviewed["fp_relabel_food"]))
    assert task["data"]["image"].startswith("/data/local-files/?d=bk-dataset/images/")
    (pred,) = task["predictions"]
    assert pred["model_version"] == "bk-detector 1.0.0" and pred["score"] == 0.8
    veg = pred["result"][1]
    assert veg["type"] == "rectanglelabels" and veg["from_name"] == "label" and veg["to_name"] == "image"
    assert veg["value"]["rectanglelabels"] == ["vegetable"]
    assert [veg["value"][k] for k in ("x", "y", "width", "height")] == pytest.approx([20, 30, 20, 20])
    assert (veg["original_width"], veg["original_height"]) == (160, 90)
    assert '<Label value="cooked_food"/>' in (out / "label_studio" / "config.xml").read_text()


def test_export_imports_back_unchanged(reviewed, db_config, tmp_path) -> None:
    """The export's COCO and YOLO, read back by ``train import-labels``, give the export's own labels."""
    out = _export_cli(db_config, tmp_path)
    labels = {p.relative_to(out): p.read_text() for p in (out / "labels").rglob("*.txt")}
    for fmt in ("coco", "yolo"):
        back = tmp_path / f"back-{fmt}"
        args = ["train", "import-labels", "--format", fmt, "--src", str(out), "--out", str(back)]
        result = CliRunner().invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert {p.relative_to(back): p.read_text() for p in (back / "labels").rglob("*.txt")} == labels


def test_alert_page_marks_the_boxes_elsewhere_in_the_frame(reviewed, login) -> None:
    html = login("admin").get(f"/alerts/{reviewed['fp_remove_food']}").text
    assert html.count('<div class="box"') == 2 and html.count('<div class="box context"') == 2
    assert html.count('<tr class="muted" title="elsewhere in the frame">') == 2


def test_filters_by_restaurant_and_time(reviewed, db_config, tmp_path) -> None:
    out = tmp_path / "only"
    cfg = tmp_path / "d.yaml"
    cfg.write_text(yaml.safe_dump(db_config.model_dump(mode="json", exclude_none=True)))
    result = CliRunner().invoke(
        app,
        [
            "dashboard",
            "export-dataset",
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--restaurant",
            "r-a",
            "--since",
            "2026-11-20",
            "--until",
            "2026-11-20",
        ],
    )
    assert result.exit_code == 0, result.output
    files = json.loads((out / "datasheet.json").read_text())["files"]
    assert {f["event_id"] for f in files} == {str(reviewed["confirmed"]), str(reviewed["fp_relabel_food"])}


def test_ml_page_offers_the_same_export_as_a_zip(reviewed, db_config, login, web, tmp_path) -> None:
    cli = _files(_export_cli(db_config, tmp_path))
    ml = login("ml")
    page = ml.get("/datasets")
    assert page.status_code == 200 and 'action="/datasets/export.zip"' in page.text
    assert 'href="/datasets"' in page.text
    r = ml.get("/datasets/export.zip")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert "attachment" in r.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        root = zf.namelist()[0].split("/")[0]
        zipped = {n.split("/", 1)[1]: zf.read(n) for n in zf.namelist()}
    assert root.startswith("bk-dataset-")
    assert set(zipped) == set(cli)
    for name in cli:
        if name.startswith(("images/", "labels/", "coco/")) or name == "data.yaml":
            assert zipped[name] == cli[name], name
    tasks = zipped["label_studio/tasks.json"].decode().replace(root, "bk-dataset")
    assert json.loads(tasks) == json.loads(cli["label_studio/tasks.json"])
    api = ml.get("/api/v1/datasets/export.zip", params={"restaurant": "r-b"})
    with zipfile.ZipFile(io.BytesIO(api.content)) as zf:
        assert sum(n.endswith(".jpg") for n in zf.namelist()) == 2
    for user in ("insp-north", "rest-a"):
        assert login(user).get("/datasets/export.zip").status_code == 403
        assert login(user).get("/datasets").status_code == 403
    assert web().get("/datasets/export.zip").headers["location"].startswith("/login")
    assert ml.get("/datasets/export.zip", params={"since": "yesterday"}).status_code == 422


def test_false_positive_policy_per_rule() -> None:
    kept = alert_labels("board_misuse", "confirmed", "relabel: vegetable", [BOARD, MEAT])
    assert [lb.name for lb in kept.labels] == ["board_green", "raw_meat"] and kept.removed == 0
    removed = alert_labels("stacked_containers", "false_positive", "", [LOWER, UPPER])
    assert [lb.y1 for lb in removed.labels] == [0.3] and removed.removed == 1  # the upper one is blamed
    context = alert_labels("board_misuse", "false_positive", "", [BOARD, MEAT, CONTEXT_MEAT], 2)
    assert [lb.name for lb in context.labels] == ["board_green", "raw_meat"] and context.removed == 1
    assert context.labels[1].x1 == 0.7  # the meat elsewhere in the frame stays
    other = alert_labels("new_rule", "false_positive", "", [BOARD, MEAT])
    assert other.labels == [] and other.removed == 2
    bad = alert_labels("board_misuse", "false_positive", "relabel: broccoli", [BOARD, MEAT])
    assert bad.relabel_error and [lb.name for lb in bad.labels] == ["board_green"]


def test_split_groups_are_stable_as_data_grows() -> None:
    groups = [f"r-{i}/cam-1/2026-11-{d:02d}" for i in range(5) for d in range(1, 20)]
    first = assign_splits(groups[:40], 0.2)
    later = assign_splits(groups, 0.2)
    assert all(later[g] == s for g, s in first.items())
    share = sum(s == "val" for s in later.values()) / len(later)
    assert 0.1 < share < 0.3
    # two groups, neither hashed under the fraction: the lower hash still goes to val
    pair = sorted(groups, key=group_hash)[-2:]
    assert sorted(assign_splits(pair, 0.2).values()) == ["train", "val"]
