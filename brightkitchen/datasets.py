"""Dataset formats shared by the dashboard's export and training's import: YOLO, COCO, Label Studio.

Pure Python (the dashboard imports it; no numpy, no torch). Class ids are those of ``training/classes.py``,
found by class *name*, so a COCO or YOLO file from another tool maps by name, never by its own ids.

Layout of a dataset folder (``write_data_yaml`` and ``write_sample`` write it, ``train fit`` reads it)::

    data.yaml                      names and the train/val image folders (relative to the yaml)
    images/{train,val}/<stem>.jpg
    labels/{train,val}/<stem>.txt  one ``class cx cy w h`` line per box, normalised, 6 decimals
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from training.classes import CLASS_ID, CLASS_NAMES

SPLITS = ("train", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class Label:
    """One box: a class id and normalised corners (0..1, origin top-left)."""

    class_id: int
    x1: float
    y1: float
    x2: float
    y2: float
    score: float | None = None

    @property
    def name(self) -> str:
        return CLASS_NAMES[self.class_id]

    def yolo(self) -> str:
        """``class cx cy w h``, normalised, 6 decimals (Ultralytics' label line)."""
        cx, cy = (self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2
        return f"{self.class_id} {cx:.6f} {cy:.6f} {self.x2 - self.x1:.6f} {self.y2 - self.y1:.6f}"

    def relabelled(self, class_id: int) -> Label:
        return Label(class_id, self.x1, self.y1, self.x2, self.y2, self.score)


@dataclass
class Sample:
    """One image of a dataset: where it goes, its size in pixels, its boxes, and where it came from."""

    stem: str
    split: str
    width: int
    height: int
    labels: list[Label]
    suffix: str = ".jpg"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def image_path(self) -> str:
        """Relative to the dataset root."""
        return f"images/{self.split}/{self.stem}{self.suffix}"


def yaml_names(path: Path) -> list[str] | None:
    """The class names, by id, of a YOLO ``data.yaml`` (``names`` as a list or an id map); None without."""
    names = (yaml.safe_load(path.read_text()) or {}).get("names")
    if isinstance(names, dict):
        return [names[k] for k in sorted(names)]
    return list(names) if isinstance(names, list) else None


def yolo_text(labels: Iterable[Label]) -> str:
    return "".join(lb.yolo() + "\n" for lb in labels)


def parse_yolo(text: str, names: list[str] | None = None, where: str = "") -> list[Label]:
    """YOLO label lines → labels; with ``names`` (the source's class list) ids are mapped by name."""
    labels = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise ValueError(f"{where}:{n}: expected 'class cx cy w h', got {line!r}")
        cls = int(parts[0])
        if not 0 <= cls < len(names or CLASS_NAMES):
            raise ValueError(
                f"{where}:{n}: class id {cls} is not in the class list ({len(names or CLASS_NAMES)})"
            )
        cx, cy, w, h = (float(p) for p in parts[1:])
        labels.append(
            Label(class_id_of(names[cls] if names else CLASS_NAMES[cls], where), *_corners(cx, cy, w, h))
        )
    return labels


def _corners(cx: float, cy: float, w: float, h: float) -> tuple[float, float, float, float]:
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def class_id_of(name: str, where: str = "") -> int:
    """Our class id of a class name; ``ValueError`` naming the known classes otherwise."""
    if name not in CLASS_ID:
        raise ValueError(f"{where}: unknown class {name!r}; known: {', '.join(CLASS_NAMES)}")
    return CLASS_ID[name]


# --- the split ---------------------------------------------------------------------------------------------


def group_hash(group: str) -> float:
    """A stable number in [0, 1) for a group key (same on every machine and every export)."""
    return int.from_bytes(hashlib.sha256(group.encode()).digest()[:8], "big") / 2**64


def assign_splits(groups: Iterable[str], val_fraction: float) -> dict[str, str]:
    """Whole groups to train or val: val when the group's hash is below ``val_fraction``.

    A group keeps its side as more data arrives (the hash depends on the key alone), so a later export
    never moves a validation scene into training. With two or more groups and none drawn for val, the
    group with the lowest hash goes to val, so that val is never empty.
    """
    keys = sorted(set(groups))
    split = {g: "val" if group_hash(g) < val_fraction else "train" for g in keys}
    if val_fraction > 0 and len(keys) >= 2 and "val" not in split.values():
        split[min(keys, key=group_hash)] = "val"
    return split


# --- YOLO folder -------------------------------------------------------------------------------------------


def data_yaml() -> str:
    """``data.yaml`` of a dataset folder; paths are relative to the yaml's own folder."""
    return yaml.safe_dump(
        {"train": "images/train", "val": "images/val", "names": dict(enumerate(CLASS_NAMES))},
        sort_keys=False,
    )


def write_data_yaml(out: Path) -> None:
    """Create the split folders and ``data.yaml``."""
    for split in SPLITS:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
    (out / "data.yaml").write_text(data_yaml())


def write_sample(out: Path, sample: Sample, image: bytes) -> None:
    """Write one image and its label file (empty for an image without boxes: a negative)."""
    (out / sample.image_path).write_bytes(image)
    (out / "labels" / sample.split / f"{sample.stem}.txt").write_text(yolo_text(sample.labels))


# --- COCO --------------------------------------------------------------------------------------------------


def coco_json(samples: list[Sample]) -> dict[str, Any]:
    """One COCO detection document for all samples; ``split`` and ``meta`` ride along on each image.

    Category ids are our class ids + 1 (COCO reserves 0); ``bbox`` is ``[x, y, w, h]`` in pixels.
    """
    images, annotations = [], []
    for i, s in enumerate(samples, 1):
        images.append(
            {
                "id": i,
                "file_name": s.image_path,
                "width": s.width,
                "height": s.height,
                "split": s.split,
                **s.meta,
            }
        )
        for lb in s.labels:
            x, y = lb.x1 * s.width, lb.y1 * s.height
            w, h = (lb.x2 - lb.x1) * s.width, (lb.y2 - lb.y1) * s.height
            ann = {
                "id": len(annotations) + 1,
                "image_id": i,
                "category_id": lb.class_id + 1,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
            }
            if lb.score is not None:
                ann["score"] = lb.score
            annotations.append(ann)
    categories = [{"id": i + 1, "name": n, "supercategory": "object"} for i, n in enumerate(CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def parse_coco(doc: dict[str, Any], where: str = "") -> list[tuple[dict[str, Any], list[Label]]]:
    """COCO document → (image entry, labels) pairs; categories are mapped to our classes by name."""
    try:
        names = {c["id"]: c["name"] for c in doc["categories"]}
        boxes: dict[Any, list[Label]] = {img["id"]: [] for img in doc["images"]}
        sizes = {img["id"]: (img["width"], img["height"]) for img in doc["images"]}
        for ann in doc["annotations"]:
            w_img, h_img = sizes[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            cls = class_id_of(names[ann["category_id"]], where)
            boxes[ann["image_id"]].append(Label(cls, x / w_img, y / h_img, (x + w) / w_img, (y + h) / h_img))
        return [(img, boxes[img["id"]]) for img in doc["images"]]
    except KeyError as exc:
        raise ValueError(f"{where}: not a COCO detection file (missing key {exc})") from None


# --- Label Studio ------------------------------------------------------------------------------------------

LABEL_STUDIO_URL_PREFIX = "/data/local-files/?d="


def label_studio_tasks(
    samples: list[Sample], root_name: str, model_version: str = ""
) -> list[dict[str, Any]]:
    """Label Studio tasks with the boxes as pre-annotations (``predictions``, rectanglelabels in percent).

    Images are referenced through Label Studio's local-files storage, as ``<root_name>/images/...``:
    start Label Studio with ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT`` set to the folder that holds the
    dataset folder ``root_name``.
    """
    tasks = []
    for s in samples:
        result = [
            {
                "id": f"{s.stem[-12:]}-{k}",
                "type": "rectanglelabels",
                "from_name": "label",
                "to_name": "image",
                "original_width": s.width,
                "original_height": s.height,
                "image_rotation": 0,
                "value": {
                    "x": lb.x1 * 100,
                    "y": lb.y1 * 100,
                    "width": (lb.x2 - lb.x1) * 100,
                    "height": (lb.y2 - lb.y1) * 100,
                    "rotation": 0,
                    "rectanglelabels": [lb.name],
                },
                **({"score": lb.score} if lb.score is not None else {}),
            }
            for k, lb in enumerate(s.labels)
        ]
        scores = [lb.score for lb in s.labels if lb.score is not None]
        prediction: dict[str, Any] = {
            "model_version": model_version or s.meta.get("model", ""),
            "result": result,
        }
        if scores:
            prediction["score"] = min(scores)
        data = {"image": f"{LABEL_STUDIO_URL_PREFIX}{root_name}/{s.image_path}", "split": s.split, **s.meta}
        tasks.append({"data": data, "predictions": [prediction]})
    return tasks


def label_studio_config() -> str:
    """The labelling interface matching the tasks: one RectangleLabels over the image, our classes."""
    labels = "\n".join(f'    <Label value="{n}"/>' for n in CLASS_NAMES)
    return (
        '<View>\n  <Image name="image" value="$image"/>\n'
        f'  <RectangleLabels name="label" toName="image">\n{labels}\n  </RectangleLabels>\n</View>\n'
    )


def dump_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


# --- image size without an image library -------------------------------------------------------------------


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG or PNG from its header; None if it is neither."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    return None
