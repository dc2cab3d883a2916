"""Corrected labels back from CVAT or Label Studio (YOLO or COCO exports) into our YOLO dataset layout.

Classes are matched by name (``data.yaml`` / ``classes.txt`` / ``obj.names`` for YOLO, ``categories`` for
COCO), so a tool's own class order or ids do not matter; an unknown class name is an error.

Each image's split comes from, in order: the source itself (a ``train``/``val`` folder in its path, or
the ``split`` field our COCO export writes); ``--splits`` (the ``datasheet.json`` of a dashboard export:
an image whose name ends with an exported alert's event id goes back to that alert's side, even after
Label Studio prefixed the name); else a stable hash of the file name (``val_fraction``).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from brightkitchen.datasets import (
    IMAGE_SUFFIXES,
    SPLITS,
    Label,
    Sample,
    dump_json,
    group_hash,
    parse_coco,
    parse_yolo,
    write_data_yaml,
    yaml_names,
    yolo_text,
)
from training.classes import CLASS_NAMES

log = logging.getLogger(__name__)
Format = Literal["yolo", "coco"]
SPLIT_WORDS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "val"}
EVENT_HEX = re.compile(r"([0-9a-f]{32})$")


class Splitter:
    """Decides the split of an image that its source does not place."""

    def __init__(self, splits_file: Path | None, val_fraction: float) -> None:
        self.val_fraction = val_fraction
        self.by_event: dict[str, str] = {}
        if splits_file is not None:
            sheet = json.loads(splits_file.read_text())
            self.by_event = {f["event_id"].replace("-", ""): f["split"] for f in sheet.get("files", [])}

    def __call__(self, stem: str, given: str | None) -> str:
        if given in SPLIT_WORDS:
            return SPLIT_WORDS[given]
        m = EVENT_HEX.search(stem)
        if m and m[1] in self.by_event:
            return self.by_event[m[1]]
        return "val" if group_hash(stem) < self.val_fraction else "train"


def _split_in_path(path: Path, root: Path) -> str | None:
    for part in reversed(path.relative_to(root).parts[:-1]):
        if part.lower() in SPLIT_WORDS:
            return part.lower()
    return None


def _yolo_names(src: Path) -> list[str]:
    """The source's class list, by id."""
    for pattern in ("data.yaml", "*.yaml", "classes.txt", "obj.names"):
        for found in sorted(src.rglob(pattern)):
            if found.suffix == ".yaml":
                if (names := yaml_names(found)) is not None:
                    return names
            else:
                return [n.strip() for n in found.read_text().splitlines() if n.strip()]
    log.warning("%s has no data.yaml, classes.txt or obj.names: assuming our class order", src)
    return list(CLASS_NAMES)


def _label_file(image: Path) -> Path:
    """``…/images/…/x.jpg`` → ``…/labels/…/x.txt``; else the .txt beside the image (CVAT's obj_train_data)."""
    parts = list(image.parts)
    if "images" in parts:
        i = len(parts) - 1 - parts[::-1].index("images")
        candidate = Path(*parts[:i], "labels", *parts[i + 1 :]).with_suffix(".txt")
        if candidate.exists():
            return candidate
    return image.with_suffix(".txt")


def _images_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_yolo_source(src: Path) -> list[tuple[Path, list[Label], str | None]]:
    """(image, labels, split named by the source) for every image of a YOLO export."""
    names = _yolo_names(src)
    found = []
    images = src / "images"  # the Ultralytics / Label Studio layout; else images lie beside their .txt
    for image in _images_under(images if images.is_dir() else src):
        txt = _label_file(image)
        labels = parse_yolo(txt.read_text(), names, str(txt)) if txt.exists() else []
        found.append((image, labels, _split_in_path(image, src)))
    return found


def _coco_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    files = []
    for path in sorted(src.rglob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            continue
        if isinstance(doc, dict) and {"images", "annotations", "categories"} <= doc.keys():
            files.append(path)
    if not files:
        raise FileNotFoundError(f"no COCO JSON (with images, annotations, categories) under {src}")
    return files


def read_coco_source(src: Path) -> list[tuple[Path, list[Label], str | None]]:
    """(image, labels, split named by the source) for every image of one or more COCO files."""
    root = src.parent if src.is_file() else src
    by_name: dict[str, list[Path]] = {}
    for image in _images_under(root):
        by_name.setdefault(image.name, []).append(image)
    found = []
    for path in _coco_files(src):
        file_split = next(
            (SPLIT_WORDS[w] for w in re.split(r"[^a-z]+", path.stem.lower()) if w in SPLIT_WORDS), None
        )
        for entry, labels in parse_coco(json.loads(path.read_text()), str(path)):
            name = entry["file_name"]
            candidates = [path.parent / name, root / name, root / "images" / name]
            image = next((c for c in candidates if c.is_file()), None)
            if image is None:
                matches = by_name.get(Path(name).name, [])
                if len(matches) != 1:
                    raise FileNotFoundError(f"{path}: image {name!r} not found under {root}")
                image = matches[0]
            found.append((image, labels, entry.get("split") or file_split))
    return found


def import_labels(
    fmt: Format, src: Path, out: Path, splits_file: Path | None = None, val_fraction: float = 0.2
) -> dict[str, Any]:
    """Write ``out`` in our YOLO layout from a YOLO or COCO export; returns a summary, also as import.json."""
    if not src.exists():
        raise FileNotFoundError(f"{src} does not exist")
    items = read_yolo_source(src) if fmt == "yolo" else read_coco_source(src)
    if not items:
        raise FileNotFoundError(f"no images under {src}")
    split_of = Splitter(splits_file, val_fraction)
    write_data_yaml(out)
    used: set[str] = set()
    per_class: Counter[str] = Counter()
    per_split: Counter[str] = Counter()
    for image, labels, given in items:
        stem = re.sub(r"[^A-Za-z0-9._-]", "_", image.stem)
        unique, n = stem, 1
        while unique in used:
            unique, n = f"{stem}_{n}", n + 1
        used.add(unique)
        sample = Sample(unique, split_of(stem, given), 0, 0, labels, image.suffix.lower())
        shutil.copyfile(image, out / sample.image_path)
        (out / "labels" / sample.split / f"{unique}.txt").write_text(yolo_text(labels))
        per_split[sample.split] += 1
        per_class.update(lb.name for lb in labels)
    summary = {
        "format": fmt,
        "source": str(src),
        "images": {s: per_split[s] for s in SPLITS},
        "per_class": {n: per_class[n] for n in CLASS_NAMES},
    }
    dump_json(out / "import.json", summary)
    return summary
