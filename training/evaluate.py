"""Detection metrics of a model folder on a YOLO dataset, through the edge's own ONNX Runtime path.

mAP follows Ultralytics' validator (confidence 0.001, multi-label decoding, greedy matching in confidence
order at IoU 0.50:0.95, its ``ap_per_class``), so figures compare with ``yolo val``; the boxes come from
``edge_agent.detector``. A dataset class the model lacks counts as its counterpart in the model's label map
(``container_empty`` as ``container`` for a model with one container class), so that an older model is
scored on what it was trained to see.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from brightkitchen.datasets import yaml_names
from edge_agent.detector import Detector
from edge_agent.tracking import iou_matrix
from training import offline
from training.classes import counterparts, named

log = logging.getLogger(__name__)
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
PROTOCOL = "confidence 0.001, NMS IoU 0.7, multi-label decoding (as yolo val)"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass(frozen=True)
class ClassMetrics:
    name: str
    instances: int
    precision: float
    recall: float
    map50: float
    map50_95: float


def match(pred_cls: np.ndarray, true_cls: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Which predictions (sorted by descending confidence) are correct at each IoU threshold: (N, 10)."""
    correct = np.zeros((len(pred_cls), len(IOU_THRESHOLDS)), dtype=bool)
    if not len(pred_cls) or not len(true_cls):
        return correct
    iou = iou * (true_cls[:, None] == pred_cls[None, :])
    claimed = np.zeros((len(true_cls), len(IOU_THRESHOLDS)), dtype=bool)
    for j in np.flatnonzero((iou >= IOU_THRESHOLDS[0]).any(0)):
        available = np.where(claimed, 0, iou[:, j, None])
        k = available.argmax(0)
        correct[j] = available[k, range(len(IOU_THRESHOLDS))] >= IOU_THRESHOLDS
        claimed[k, range(len(IOU_THRESHOLDS))] |= correct[j]
    return correct


def read_labels(path: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """YOLO label file → (classes, xyxy pixel boxes)."""
    if not path.exists() or not path.read_text().strip():
        return np.zeros(0, dtype=int), np.zeros((0, 4), dtype=np.float32)
    rows = np.loadtxt(path, ndmin=2)
    cls, (cx, cy, w, h) = rows[:, 0].astype(int), rows[:, 1:5].T
    xyxy = np.stack(
        [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], 1
    )
    return cls, xyxy.astype(np.float32)


def dataset_images(data: Path, split: str) -> list[Path]:
    """Images of one split of a YOLO dataset folder (``images/<split>``), or all of ``images/``."""
    root = data / "images" / split if (data / "images" / split).is_dir() else data / "images"
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def dataset_classes(data: Path) -> list[str] | None:
    """The class names of a dataset folder's ``data.yaml``; None without one."""
    return yaml_names(data / "data.yaml") if (data / "data.yaml").exists() else None


def label_path(image: Path) -> Path:
    parts = list(image.parts)
    idx = len(parts) - 1 - parts[::-1].index("images")
    parts[idx] = "labels"
    return Path(*parts).with_suffix(".txt")


def evaluate_detections(
    detector: Detector,
    images: list[Path],
    confidence: float = 0.001,
    iou: float = 0.7,
    classes: Sequence[str] | None = None,
) -> list[ClassMetrics]:
    """Run the detector over the images and compute per-class P, R, mAP50 and mAP50-95. ``classes``: the
    names of the labels' class ids (``dataset_classes``); None: the model's own."""
    offline.prepare()
    from ultralytics.utils.metrics import ap_per_class

    stats: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    targets: list[np.ndarray] = []
    if classes is None:
        as_model = np.arange(len(detector.class_names))
    else:
        as_model = np.array([-1 if i is None else i for i in counterparts(named(classes), detector.labels)])
    for image in tqdm(images, desc="eval", unit="img"):
        frame = cv2.imread(str(image))
        if frame is None:
            raise ValueError(f"cannot read image {image}")
        true_cls, true_xyxy = read_labels(label_path(image), frame.shape[1], frame.shape[0])
        true_cls = as_model[true_cls]
        true_cls, true_xyxy = true_cls[true_cls >= 0], true_xyxy[true_cls >= 0]
        dets = detector.detect(frame, confidence=confidence, iou=iou, multi_label=True)
        order = np.argsort(-dets.confidence) if len(dets) else np.zeros(0, dtype=int)
        pred_cls = dets.class_id[order] if len(dets) else np.zeros(0, dtype=int)
        pred_xyxy = dets.xyxy[order] if len(dets) else np.zeros((0, 4))
        correct = match(pred_cls, true_cls, iou_matrix(true_xyxy, pred_xyxy))
        stats.append((correct, dets.confidence[order] if len(dets) else np.zeros(0), pred_cls))
        targets.append(true_cls)
    tp = np.concatenate([s[0] for s in stats]) if stats else np.zeros((0, 10), bool)
    conf = np.concatenate([s[1] for s in stats]) if stats else np.zeros(0)
    pred = np.concatenate([s[2] for s in stats]) if stats else np.zeros(0, int)
    target = np.concatenate(targets) if targets else np.zeros(0, int)
    names = detector.class_names
    results = {
        name: ClassMetrics(str(name), int((target == i).sum()), 0.0, 0.0, 0.0, 0.0)
        for i, name in enumerate(names)
    }
    if len(tp) and len(target):
        _, _, p, r, _, ap, classes, *_ = ap_per_class(tp, conf, pred, target)
        for k, c in enumerate(classes):
            results[names[c]] = ClassMetrics(
                str(names[c]),
                int((target == c).sum()),
                float(p[k]),
                float(r[k]),
                float(ap[k, 0]),
                float(ap[k].mean()),
            )
    return list(results.values())


def format_table(rows: list[ClassMetrics]) -> str:
    """A fixed-width table of per-class metrics, with the mean over classes that have instances."""
    lines = [f"{'class':<14}{'inst':>7}{'P':>8}{'R':>8}{'mAP50':>8}{'mAP50-95':>10}"]
    for m in rows:
        lines.append(
            f"{m.name:<14}{m.instances:>7}{m.precision:>8.3f}{m.recall:>8.3f}{m.map50:>8.3f}"
            f"{m.map50_95:>10.3f}"
        )
    present = [m for m in rows if m.instances]
    if present:
        mean = lambda attr: float(np.mean([getattr(m, attr) for m in present]))  # noqa: E731
        lines.append(
            f"{'all':<14}{sum(m.instances for m in present):>7}{mean('precision'):>8.3f}"
            f"{mean('recall'):>8.3f}{mean('map50'):>8.3f}{mean('map50_95'):>10.3f}"
        )
    return "\n".join(lines)


def training_seeds(model_dir: Path) -> set[int]:
    """Seeds of the synthetic data a model was trained on, from its card."""
    card = json.loads((model_dir / "card.json").read_text())
    return {int(s) for s in card.get("training", {}).get("dataset", {}).get("seeds", [])}


def data_seed(data: Path) -> int | None:
    manifest = data / "manifest.json"
    return json.loads(manifest.read_text()).get("seed") if manifest.exists() else None
