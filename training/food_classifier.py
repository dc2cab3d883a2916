"""The food classifier, a model folder's optional second stage: crops, training, evaluation, attaching.

The classifier re-reads the category of each food box from a crop of the frame
(``edge_agent.food_classifier``). Its crops are cut here with the edge's own ``food_crop`` from the true
food boxes of YOLO datasets, so that training and the edge crop alike; Ultralytics trains it
(``yolo11n-cls``, from scratch or from .pt weights) on an ImageFolder of those crops and exports it to
ONNX, whose output is one probability per class in the order of ``model.names`` (the sorted folder names).
Example::

    brightkitchen train food-classifier --data data/synth-a --val data/synth-val --out runs/foodcls
    brightkitchen train attach-classifier --model models/bk-detector-0.6.0 --classifier runs/foodcls \\
        --out models/bk-detector-0.6.1 --version 0.6.1
    brightkitchen train eval-food --model models/bk-detector-0.6.1 --data data/synth-heldout
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from brightkitchen.datasets import yaml_names
from brightkitchen.model_card import (
    FOOD_CLASSIFIER_FILE,
    LABELS_FILE,
    FoodClassifierCard,
    ModelCard,
    file_sha256,
)
from edge_agent.config import ModelSection
from edge_agent.detector import Detector, ModelLoadError
from edge_agent.food_classifier import FoodClassifier, food_crop
from edge_agent.tracking import iou_matrix
from training import offline
from training.classes import FOOD_CATEGORIES
from training.evaluate import dataset_images, label_path, read_labels
from training.export import write_card

log = logging.getLogger(__name__)
ARCH = "yolo11n-cls.yaml"
OPSET = 18
RESULT_FILE = "food_classifier.json"  # in the run folder: what `attach` puts on the card
EDGE_SURE: float = ModelSection.model_fields["food_classifier_at"].default  # the edge's default
MIN_SIDE_PX = FoodClassifier.MIN_SIDE_PX  # thinner crops are neither trained on nor read at the edge
FoodBox = tuple[int, str, np.ndarray]  # label row, class name, x0 y0 x1 y1 as shares of the image (0..1)


# --- crops ------------------------------------------------------------------------------------------------


def food_labels(dataset: Path) -> dict[Path, list[FoodBox]]:
    """Every image of a YOLO dataset that has food boxes, with those boxes; ``FileNotFoundError`` without
    a data.yaml."""
    yaml_path = dataset / "data.yaml"
    if not yaml_path.exists():
        raise FileNotFoundError(f"{yaml_path} does not exist: not a YOLO dataset folder")
    names = yaml_names(yaml_path) or []
    found: dict[Path, list[FoodBox]] = {}
    for image in dataset_images(dataset, "all"):
        classes, boxes = read_labels(label_path(image), 1, 1)
        food = [
            (k, names[c], boxes[k])
            for k, c in enumerate(classes)
            if c < len(names) and names[c] in FOOD_CATEGORIES
        ]
        if food:
            found[image] = food
    return found


def check_dataset(dataset: Path) -> int:
    """The number of food boxes of a YOLO dataset; ``FileNotFoundError`` without a data.yaml, ``ValueError``
    without food boxes."""
    count = sum(len(boxes) for boxes in food_labels(dataset).values())
    if not count:
        raise ValueError(f"{dataset}: no food boxes ({', '.join(FOOD_CATEGORIES)}) in its labels")
    return count


def pixel_xyxy(box: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A box in shares of the image → corners in the pixels of an image of this shape."""
    height, width = shape[:2]
    return box * np.array([width, height, width, height], dtype=box.dtype)


def _read(image: Path) -> np.ndarray:
    frame = cv2.imread(str(image))
    if frame is None:
        raise ValueError(f"cannot read image {image}")
    return frame


def crop_food(datasets: list[Path], out: Path, split: str, context: float = 1.2) -> dict[str, int]:
    """Cut each true food box of the datasets, grown by ``context`` as the edge does, into
    ``out/split/<class>/<dataset>_<image stem>_<line>.png``; returns the number of crops per class.

    Every food class gets a folder, empty or not: Ultralytics takes the classes from the train folders and
    needs the same ones in val. Crops thinner than ``MIN_SIDE_PX`` are skipped."""
    counts = dict.fromkeys(FOOD_CATEGORIES, 0)
    for name in FOOD_CATEGORIES:
        (out / split / name).mkdir(parents=True, exist_ok=True)
    for dataset in datasets:
        labelled = food_labels(dataset)
        for image, boxes in tqdm(labelled.items(), desc=f"{split} crops: {dataset.name}", unit="img"):
            frame = _read(image)
            for line, name, box in boxes:
                crop = food_crop(frame, pixel_xyxy(box, frame.shape), context)
                if min(crop.shape[:2]) < MIN_SIDE_PX:
                    continue
                cv2.imwrite(str(out / split / name / f"{dataset.name}_{image.stem}_{line}.png"), crop)
                counts[name] += 1
    log.info("%s crops in %s: %s", split, out / split, counts)
    return counts


# --- training ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FoodClassifierResult:
    """A trained classifier run, as ``train_food_classifier`` leaves it in ``RESULT_FILE``."""

    onnx: Path
    classes: list[str]  # output order (Ultralytics' model.names)
    input_size: int
    context: float
    epochs: int  # run, one results.csv row each
    val_top1: float  # on the val crops through the exported ONNX, preprocessed as the edge does (squashed)
    crops: dict[str, dict[str, int]]  # split → class → crops
    val_top1_training: float | None = None  # Ultralytics' validator (shortest side resized, centre crop)
    batch: int | None = None
    weights: str | None = None
    datasets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # split → [{path, seed}]
    train_seconds: float | None = None

    def write(self, run: Path) -> None:
        (run / RESULT_FILE).write_text(json.dumps({**asdict(self), "onnx": str(self.onnx)}, indent=2) + "\n")

    @classmethod
    def read(cls, run: Path) -> FoodClassifierResult:
        path = run / RESULT_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist: not a `train food-classifier` run folder")
        doc = json.loads(path.read_text())
        return cls(**{**doc, "onnx": Path(doc["onnx"])})


def _dataset_info(dataset: Path) -> dict[str, Any]:
    manifest = dataset / "manifest.json"
    seed = json.loads(manifest.read_text()).get("seed") if manifest.exists() else None
    return {"path": str(dataset), "seed": seed}


@contextmanager
def _ultralytics_log(path: Path) -> Iterator[None]:
    """Everything Ultralytics prints, also into ``path``."""
    from ultralytics.utils import LOGGER

    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    LOGGER.addHandler(handler)
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        handler.close()


def _results(run: Path) -> tuple[int, float | None]:
    """Epochs run and the best validation top-1 accuracy (that of best.pt) from Ultralytics' results.csv."""
    with (run / "results.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    top1 = [float(r["metrics/accuracy_top1"]) for r in rows if r.get("metrics/accuracy_top1")]
    return len(rows), max(top1) if top1 else None


def export_classifier(weights: Path, imgsz: int, out: Path) -> list[str]:
    """Export .pt classifier weights to ONNX at ``out`` (static ``imgsz`` square input, softmax output);
    returns the class names in output order."""
    from ultralytics import YOLO

    model = YOLO(str(weights))
    path = model.export(format="onnx", imgsz=imgsz, opset=OPSET, simplify=False, dynamic=False)
    shutil.copyfile(path, out)
    return [model.names[i] for i in range(len(model.names))]


def onnx_top1(onnx: Path, classes: list[str], input_size: int, context: float, crops: Path) -> float:
    """Top-1 accuracy of an exported classifier on ``crops/<class>/*.png``, run as the edge runs it."""
    card = FoodClassifierCard(
        sha256=file_sha256(onnx), input_size=input_size, context=context, classes=classes, file=onnx.name
    )
    classifier = FoodClassifier.load(onnx.parent, card)
    right = total = 0
    for k, name in enumerate(classes):
        for png in sorted((crops / name).glob("*.png")):
            right += int(classifier.probabilities(_read(png)).argmax() == k)
            total += 1
    return right / total if total else 0.0


def train_food_classifier(
    train: list[Path],
    val: list[Path],
    out: Path,
    epochs: int,
    imgsz: int = 96,
    batch: int = 64,
    weights: Path | None = None,
    context: float = 1.2,
    workers: int = 2,
) -> FoodClassifierResult:
    """Crop the food boxes of ``train`` and ``val`` into ``out/crops``, train a classifier on them, export
    ``out/food_classifier.onnx`` and describe it in ``out/food_classifier.json``.

    ``out`` must not exist; ``FileNotFoundError`` or ``ValueError`` for a dataset that is not one or that
    has no food boxes."""
    out = out.resolve()
    if out.exists():
        raise FileExistsError(f"{out} already exists: choose a new run folder")
    for dataset in [*train, *val]:
        check_dataset(dataset)
    out.mkdir(parents=True)
    crops = {
        split: crop_food(sets, out / "crops", split, context)
        for split, sets in (("train", train), ("val", val))
    }
    for split, counts in crops.items():
        if not sum(counts.values()):
            raise ValueError(f"no {split} crops of at least {MIN_SIDE_PX} px")
    offline.prepare()
    from ultralytics import YOLO

    model = YOLO(str(weights) if weights else ARCH)
    log.info(
        "training %s on %d crops for %d epochs at %d px",
        weights or ARCH,
        sum(crops["train"].values()),
        epochs,
        imgsz,
    )
    started = time.time()
    with _ultralytics_log(out / "train.log"):
        model.train(
            data=str(out / "crops"),
            epochs=epochs,
            imgsz=imgsz,
            batch=batch,
            workers=workers,
            device="cpu",
            project=str(out.parent),
            name=out.name,
            exist_ok=True,
            pretrained=bool(weights),
            scale=0.3,
            seed=0,
            deterministic=False,
            plots=False,
            amp=False,
        )
        seconds = time.time() - started
        onnx = out / FOOD_CLASSIFIER_FILE
        classes = export_classifier(out / "weights" / "best.pt", imgsz, onnx)
    if unknown := sorted(set(classes) - set(FOOD_CATEGORIES)):
        raise ValueError(f"{out / 'weights' / 'best.pt'} has classes {unknown} that are not food classes")
    epochs_run, val_top1_training = _results(out)
    result = FoodClassifierResult(
        onnx=onnx,
        classes=classes,
        input_size=imgsz,
        context=context,
        epochs=epochs_run,
        val_top1=round(onnx_top1(onnx, classes, imgsz, context, out / "crops" / "val"), 4),
        crops=crops,
        val_top1_training=val_top1_training,
        batch=batch,
        weights=str(weights) if weights else None,
        datasets={"train": [_dataset_info(d) for d in train], "val": [_dataset_info(d) for d in val]},
        train_seconds=round(seconds, 1),
    )
    result.write(out)
    log.info(
        "food classifier %s: val top-1 %.3f (%d epochs, %.0f s)", onnx, result.val_top1, epochs_run, seconds
    )
    return result


# --- attaching to a model folder --------------------------------------------------------------------------


def classifier_seeds(card: ModelCard) -> set[int]:
    """Seeds of the datasets a model folder's food classifier was trained and validated on."""
    spec = card.food_classifier
    datasets = spec.training.get("datasets", {}) if spec else {}
    return {int(d["seed"]) for sets in datasets.values() for d in sets if d.get("seed") is not None}


def attach_food_classifier(model: Path, run: Path, out: Path, version: str) -> ModelCard:
    """Copy the model folder ``model`` to ``out`` (which must not exist) with the classifier of ``run`` as
    its ``food_classifier.onnx``, on a card of version ``version``; model.onnx and its sha256 stay.

    The new folder is loaded once as the edge loads it; it is removed again if that fails."""
    if out.exists():
        raise FileExistsError(f"{out} already exists: choose a new model folder")
    card = ModelCard.read(model)
    result = FoodClassifierResult.read(run)
    onnx = run / FOOD_CLASSIFIER_FILE
    if not onnx.exists():
        raise FileNotFoundError(f"{onnx} does not exist")
    food = {x["name"] for x in json.loads((model / LABELS_FILE).read_text()) if x["kind"] == "food"}
    if unknown := sorted(set(result.classes) - food):
        raise ValueError(f"the classifier's classes {unknown} are not food classes of {model}")
    shutil.copytree(model, out)
    shutil.copyfile(onnx, out / FOOD_CLASSIFIER_FILE)
    card.food_classifier = FoodClassifierCard(
        sha256=file_sha256(out / FOOD_CLASSIFIER_FILE),
        input_size=result.input_size,
        context=result.context,
        classes=result.classes,
        metrics={
            "val_top1": result.val_top1,
            "val_top1_training": result.val_top1_training,
            "val_crops": sum(result.crops["val"].values()),
        },
        training={
            "epochs": result.epochs,
            "imgsz": result.input_size,
            "batch": result.batch,
            "weights": result.weights,
            "crops": result.crops["train"],
            "datasets": result.datasets,
            "train_seconds": result.train_seconds,
        },
        size_bytes=(out / FOOD_CLASSIFIER_FILE).stat().st_size,
    )
    card.version = version
    card.created_at = datetime.now(UTC).isoformat(timespec="seconds")
    write_card(out, card)
    try:
        Detector.load(out, threads=1)
    except ModelLoadError:
        shutil.rmtree(out)
        raise
    log.info("model folder %s: %s with the food classifier of %s", out, card.ref, run)
    return card


# --- evaluation -------------------------------------------------------------------------------------------

READINGS = ("detector", "classifier", "combined")
NONE = "none"  # the detector found no food box at IoU >= 0.5 (or the crop was too thin to classify)


def evaluate_food_classifier(model_dir: Path, dataset: Path, sure: float = EDGE_SURE) -> dict[str, Any]:
    """The category of every true food box of a YOLO dataset as read by the detector (its best food box at
    IoU >= 0.5, at confidence 0.25), the classifier and both combined as at the edge (the classifier's
    category where it is at least ``sure``).

    The classifier reads the crop the edge would cut: that of the detector's box, or of the true box where
    the detector found none. Accuracies count the boxes the detector found; the confusion counts
    (reading → truth → read as) all boxes."""
    detector = Detector.load(model_dir)
    classifier = detector.food_classifier
    if classifier is None:
        raise ValueError(f"{model_dir} has no food classifier (card.food_classifier)")
    food = [x.name for x in detector.labels if x.kind == "food"]
    rows: list[tuple[str, str, str, str]] = []  # truth, detector, classifier, combined
    for image, boxes in tqdm(food_labels(dataset).items(), desc="eval food", unit="img"):
        frame = _read(image)
        dets = detector.detect(frame, 0.25)
        combined = detector.reread_food(frame, dets, sure)
        is_food = np.isin(dets.data["class_name"], food) if len(dets) else np.zeros(0, bool)
        for _, truth, box in boxes:
            xyxy = pixel_xyxy(box, frame.shape)
            iou = (
                iou_matrix(xyxy[None].astype(np.float32), dets.xyxy)[0] * is_food
                if len(dets)
                else np.zeros(0)
            )
            k = int(iou.argmax()) if len(iou) and iou.max() >= 0.5 else None
            crop = food_crop(frame, xyxy if k is None else dets.xyxy[k], classifier.card.context)
            read = NONE
            if min(crop.shape[:2]) >= MIN_SIDE_PX:
                read = classifier.card.classes[int(classifier.probabilities(crop).argmax())]
            found = k is not None
            rows.append(
                (
                    truth,
                    str(dets.data["class_name"][k]) if found else NONE,
                    read,
                    str(combined.data["class_name"][k]) if found else NONE,
                )
            )
    seen = [r for r in rows if r[1] != NONE]
    confusion: dict[str, dict[str, dict[str, int]]] = {}
    truths = [t for t in food if any(r[0] == t for r in rows)]
    for i, reading in enumerate(READINGS, 1):
        counts = Counter((r[0], r[i]) for r in rows)
        confusion[reading] = {t: {p: counts[t, p] for p in [*food, NONE] if counts[t, p]} for t in truths}
    changed = [r for r in seen if r[3] != r[1]]
    return {
        "model": str(model_dir),
        "dataset": str(dataset),
        "sure": sure,
        "boxes": len(rows),
        "found": len(seen),
        "accuracy": {
            reading: round(sum(r[0] == r[i] for r in seen) / len(seen), 4) if seen else None
            for i, reading in enumerate(READINGS, 1)
        },
        "reread": {
            "changed": len(changed),
            "fixed": sum(r[3] == r[0] for r in changed),
            "broken": sum(r[1] == r[0] for r in changed),
        },
        "confusion": confusion,
    }


def format_food_eval(result: dict[str, Any]) -> str:
    """Accuracies and one confusion table per reading (rows: truth; columns: read as)."""
    acc = result["accuracy"]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    rr = result["reread"]
    lines = [
        f"{result['boxes']} true food boxes, {result['found']} found by the detector; accuracy on those: "
        + ", ".join(f"{k} {fmt(v)}" for k, v in acc.items()),
        f"combined (classifier where >= {result['sure']}): {rr['changed']} boxes re-read, "
        f"{rr['fixed']} fixed, {rr['broken']} broken",
    ]
    columns = [*FOOD_CATEGORIES, NONE]
    for reading, table in result["confusion"].items():
        lines += [
            "",
            f"{reading} (rows: truth, columns: read as)",
            f"{'':<13}" + "".join(f"{c:>13}" for c in columns),
        ]
        for truth, row in table.items():
            lines.append(f"{truth:<13}" + "".join(f"{row.get(c, 0):>13}" for c in columns))
    return "\n".join(lines)
