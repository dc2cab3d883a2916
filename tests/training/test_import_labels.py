"""Corrected labels back in: our export's YOLO and COCO, a Label Studio COCO export and a CVAT YOLO 1.1
export all import into the same YOLO layout, with the labels and splits they went out with."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from brightkitchen.cli import app
from brightkitchen.datasets import (
    Label,
    Sample,
    coco_json,
    dump_json,
    write_data_yaml,
    write_sample,
)
from training.classes import CLASS_ID, CLASS_NAMES
from training.import_labels import read_yolo_source

runner = CliRunner()


def _jpeg(k: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((90, 160, 3), 30 * k, np.uint8))
    assert ok
    return buf.tobytes()


@pytest.fixture
def export(tmp_path: Path) -> Path:
    """A folder as ``brightkitchen dashboard export-dataset`` writes it: YOLO, COCO, datasheet."""
    root = tmp_path / "export"
    write_data_yaml(root)
    samples = []
    boxes = [
        [
            Label(CLASS_ID["board_green"], 0.1, 0.2, 0.6, 0.8, 0.9),
            Label(CLASS_ID["raw_meat"], 0.2, 0.3, 0.4, 0.5),
        ],
        [Label(CLASS_ID["container"], 0.25, 0.3, 0.55, 0.7)],
        [],  # a hard negative whose only box was removed
        [
            Label(CLASS_ID["board_red"], 0.01, 0.02, 0.33, 0.47),
            Label(CLASS_ID["vegetable"], 0.123, 0.2, 0.2, 0.3),
        ],
    ]
    for k, labels in enumerate(boxes):
        event = uuid.UUID(int=k + 1)
        sample = Sample(
            f"r-{'ab'[k % 2]}.cam-1.2026112{k}.{event.hex}",
            "val" if k == 1 else "train",
            160,
            90,
            labels,
            meta={"event_id": str(event), "verdict": "confirmed"},
        )
        write_sample(root, sample, _jpeg(k))
        samples.append(sample)
    dump_json(root / "coco" / "annotations.json", coco_json(samples))
    files = [{"image": s.image_path, "event_id": s.meta["event_id"], "split": s.split} for s in samples]
    dump_json(root / "datasheet.json", {"files": files})
    (root / "preview.png").write_bytes(cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes())
    return root


def _labels(root: Path) -> dict[str, str]:
    """split/stem → label text, for every image of a dataset in our layout."""
    return {
        f"{split}/{image.stem[-32:]}": (root / "labels" / str(split) / f"{image.stem}.txt").read_text()
        for image, _, split in read_yolo_source(root)
    }


def _import(*args: str) -> str:
    result = runner.invoke(app, ["train", "import-labels", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_round_trip_of_our_export_gives_identical_labels(export: Path, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"imported-{fmt}"
    assert "3 train + 1 val images" in _import("--format", fmt, "--src", str(export), "--out", str(out))
    assert _labels(out) == _labels(export)
    assert len(_labels(out)) == 4
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == dict(enumerate(CLASS_NAMES))
    for image in (export / "images").rglob("*.jpg"):
        assert (out / image.relative_to(export)).read_bytes() == image.read_bytes()
    summary = json.loads((out / "import.json").read_text())
    assert summary["per_class"]["board_green"] == 1 and summary["images"] == {"train": 3, "val": 1}


def test_label_studio_coco_export_maps_classes_by_name_and_keeps_the_split(
    export: Path, tmp_path: Path
) -> None:
    """Label Studio: 0-based category ids in its own order, renamed flat files, no split of its own."""
    ls = tmp_path / "ls"
    (ls / "images").mkdir(parents=True)
    doc = json.loads((export / "coco" / "annotations.json").read_text())
    order = list(reversed(CLASS_NAMES))
    for ann in doc["annotations"]:
        ann["category_id"] = order.index(CLASS_NAMES[ann["category_id"] - 1])
    doc["categories"] = [{"id": i, "name": n} for i, n in enumerate(order)]
    for img in doc["images"]:
        name = f"3f2a9c1d-{Path(img['file_name']).name}"
        shutil.copyfile(export / img["file_name"], ls / "images" / name)
        img["file_name"] = f"images/{name}"
        for key in [k for k in img if k not in ("id", "file_name", "width", "height")]:
            del img[key]
    (ls / "result.json").write_text(json.dumps(doc))
    out = tmp_path / "imported"
    _import(
        "--format",
        "coco",
        "--src",
        str(ls / "result.json"),
        "--out",
        str(out),
        "--splits",
        str(export / "datasheet.json"),
    )
    assert _labels(out) == _labels(export)


def test_cvat_yolo_export_with_its_own_class_order(export: Path, tmp_path: Path) -> None:
    """CVAT YOLO 1.1: obj.names, and images with their .txt side by side in obj_train_data/."""
    cvat = tmp_path / "cvat"
    (cvat / "obj_train_data").mkdir(parents=True)
    order = ["container", "vegetable", "raw_meat", "board_red", "board_green"]
    (cvat / "obj.names").write_text("\n".join(order) + "\n")
    for image, labels, _ in read_yolo_source(export):
        shutil.copyfile(image, cvat / "obj_train_data" / image.name)
        lines = [f"{order.index(lb.name)} {lb.yolo().split(' ', 1)[1]}\n" for lb in labels]
        (cvat / "obj_train_data" / f"{image.stem}.txt").write_text("".join(lines))
    out = tmp_path / "imported"
    _import(
        "--format", "yolo", "--src", str(cvat), "--out", str(out), "--splits", str(export / "datasheet.json")
    )
    assert _labels(out) == _labels(export)


def test_unknown_class_is_an_error_naming_it(export: Path, tmp_path: Path) -> None:
    (export / "data.yaml").write_text(yaml.safe_dump({"names": [*CLASS_NAMES, "broccoli"]}))
    (export / "labels" / "train").joinpath("x.txt").write_text(f"{len(CLASS_NAMES)} 0.5 0.5 0.1 0.1\n")
    shutil.copyfile(next((export / "images" / "train").glob("*.jpg")), export / "images" / "train" / "x.jpg")
    result = runner.invoke(
        app,
        ["train", "import-labels", "--format", "yolo", "--src", str(export), "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 1 and "unknown class 'broccoli'" in result.output
