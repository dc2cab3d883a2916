"""The food classifier's training side: crops cut as the edge cuts them, a real 1-epoch training exported to
ONNX, attached to the shipped detector's folder and loaded the way the edge loads it."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from brightkitchen.cli import app
from brightkitchen.datasets import yaml_names
from brightkitchen.model_card import FOOD_CLASSIFIER_FILE, MODEL_FILE, ModelCard, file_sha256, newest_model
from edge_agent.detector import Detector, ModelLoadError
from edge_agent.food_classifier import FoodClassifier, food_crop
from training.classes import CLASS_ID, FOOD_CATEGORIES
from training.food_classifier import (
    FoodClassifierResult,
    attach_food_classifier,
    crop_food,
    evaluate_food_classifier,
)
from training.synth.stills import write_dataset

runner = CliRunner()


def _text(output: str) -> str:
    """CLI output with the error panel's borders and line breaks taken out."""
    return " ".join(output.replace("│", " ").split())


def _food_lines(dataset: Path) -> Counter[str]:
    """Food label lines per class, read straight from the label files."""
    names = yaml_names(dataset / "data.yaml")
    assert names is not None
    lines = (
        line.split() for path in (dataset / "labels").rglob("*.txt") for line in path.read_text().splitlines()
    )
    return Counter(
        names[int(parts[0])] for parts in lines if parts and names[int(parts[0])] in FOOD_CATEGORIES
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``train`` (12 stills), ``val`` (6) and ``heldout`` (6), each its own seed, and ``no_food``: a dataset
    whose only box is a board."""
    root = tmp_path_factory.mktemp("food-data")
    sets = {"train": (12, 4242), "val": (6, 4343), "heldout": (6, 4444)}
    for name, (images, seed) in sets.items():
        write_dataset(root / name, images, seed, val_fraction=0.0, progress=False)
    no_food = root / "no_food"
    (no_food / "images" / "train").mkdir(parents=True)
    (no_food / "labels" / "train").mkdir(parents=True)
    (no_food / "data.yaml").write_text((root / "train" / "data.yaml").read_text())
    cv2.imwrite(str(no_food / "images" / "train" / "a.jpg"), np.full((90, 160, 3), 80, np.uint8))
    (no_food / "labels" / "train" / "a.txt").write_text(f"{CLASS_ID['board_red']} 0.5 0.5 0.4 0.4\n")
    return {**{name: root / name for name in sets}, "no_food": no_food}


@pytest.fixture(scope="module")
def run(data: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 1-epoch training at 32 px through the CLI (~20 s on 2 cores)."""
    out = tmp_path_factory.mktemp("food-run") / "run"
    args = ["train", "food-classifier", "--data", str(data["train"]), "--val", str(data["val"])]
    args += ["--out", str(out), "--epochs", "1", "--imgsz", "32", "--batch", "16", "--workers", "0"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "val top-1" in result.output and str(out / FOOD_CLASSIFIER_FILE) in result.output
    return out


def test_crop_food_cuts_every_food_box_as_the_edge_does(data: dict[str, Path], tmp_path: Path) -> None:
    counts = crop_food([data["train"]], tmp_path, "train")
    assert counts == {name: _food_lines(data["train"])[name] for name in FOOD_CATEGORIES}
    assert sum(counts.values()) > 20
    for name in FOOD_CATEGORIES:
        assert len(list((tmp_path / "train" / name).glob("*.png"))) == counts[name]
    # one crop, byte for byte the edge's food_crop of its box
    names = yaml_names(data["train"] / "data.yaml") or []
    label, line, parts = next(
        (path, k, text.split())
        for path in sorted((data["train"] / "labels" / "train").glob("*.txt"))
        for k, text in enumerate(path.read_text().splitlines())
        if names[int(text.split()[0])] in FOOD_CATEGORIES
    )
    name = names[int(parts[0])]
    image = cv2.imread(str(data["train"] / "images" / "train" / f"{label.stem}.jpg"))
    cx, cy, w, h = (float(v) for v in parts[1:])
    height, width = image.shape[:2]
    box = np.array([(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height])
    want = food_crop(image, box, 1.2)
    got = cv2.imread(str(tmp_path / "train" / name / f"train_{label.stem}_{line}.png"))
    assert got is not None and np.array_equal(got, want)


def test_crop_food_makes_every_class_folder_even_without_food(data: dict[str, Path], tmp_path: Path) -> None:
    assert crop_food([data["no_food"]], tmp_path, "val") == dict.fromkeys(FOOD_CATEGORIES, 0)
    assert sorted(p.name for p in (tmp_path / "val").iterdir()) == sorted(FOOD_CATEGORIES)


def test_trained_classifier_attaches_and_loads_as_the_edge_loads_it(run: Path, tmp_path: Path) -> None:
    result = FoodClassifierResult.read(run)
    assert result.classes == sorted(FOOD_CATEGORIES)  # Ultralytics' order: sorted folder names
    assert (result.input_size, result.context, result.epochs) == (32, 1.2, 1)
    assert 0.0 <= result.val_top1 <= 1.0
    shipped = newest_model()
    out = tmp_path / "bk-with-classifier"
    card = attach_food_classifier(shipped, run, out, "9.9.9")
    assert card.version == "9.9.9" and card.food_classifier is not None
    assert card.sha256 == ModelCard.read(shipped).sha256 == file_sha256(out / MODEL_FILE)
    assert card.food_classifier.sha256 == file_sha256(run / FOOD_CLASSIFIER_FILE)
    assert card.food_classifier.metrics["val_top1"] == result.val_top1
    assert card.food_classifier.training["crops"] == result.crops["train"]
    assert "- food classifier: `food_classifier.onnx`" in (out / "README.md").read_text()

    detector = Detector.load(out)
    assert detector.food_classifier is not None and detector.card.sha256 == card.sha256
    assert ModelCard.read(out).food_classifier == card.food_classifier
    classifier = FoodClassifier.load(out, card.food_classifier)
    p = classifier.probabilities(np.full((40, 60, 3), 128, np.uint8))
    assert p.shape == (4,) and abs(float(p.sum()) - 1) < 1e-4  # softmax probabilities


def test_attach_refuses_an_existing_folder(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    with pytest.raises(FileExistsError):
        attach_food_classifier(newest_model(), run, out, "9.9.9")
    args = ["train", "attach-classifier", "--model", str(newest_model()), "--classifier", str(run)]
    result = runner.invoke(app, [*args, "--out", str(out), "--version", "9.9.9"])
    assert result.exit_code == 2 and "already exists" in _text(result.output)
    assert list(out.iterdir()) == []


def test_a_tampered_classifier_does_not_load(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bk"
    attach_food_classifier(newest_model(), run, out, "9.9.9")
    with (out / FOOD_CLASSIFIER_FILE).open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ModelLoadError, match="food classifier"):
        Detector.load(out)


def test_evaluation_reads_every_true_food_box(run: Path, data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bk"
    attach_food_classifier(newest_model(), run, out, "9.9.9")
    # at sure 0 the combination takes the classifier's category on every box the detector found
    result = evaluate_food_classifier(out, data["heldout"], sure=0.0)
    assert result["boxes"] == sum(_food_lines(data["heldout"]).values())
    assert 0 < result["found"] <= result["boxes"]
    assert result["accuracy"]["combined"] == result["accuracy"]["classifier"]
    for table in result["confusion"].values():
        assert sum(sum(row.values()) for row in table.values()) == result["boxes"]

    args = ["train", "eval-food", "--model", str(out)]
    shown = runner.invoke(app, [*args, "--data", str(data["heldout"])], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    assert "found by the detector; accuracy on those" in shown.output
    seen = runner.invoke(app, [*args, "--data", str(data["val"])])  # the classifier's val seed
    assert seen.exit_code == 2 and "seed 4343" in _text(seen.output)


@pytest.mark.parametrize(
    ("which", "message"),
    [("missing", "not a YOLO dataset folder"), ("no_food", "no food boxes"), ("out", "already exists")],
)
def test_training_refuses_bad_input_before_it_starts(
    data: dict[str, Path], tmp_path: Path, which: str, message: str
) -> None:
    train = {"missing": tmp_path / "nothing", "no_food": data["no_food"]}.get(which, data["train"])
    out = tmp_path / "run"
    if which == "out":
        out.mkdir()
    args = ["train", "food-classifier", "--data", str(train), "--val", str(data["val"]), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and message in _text(result.output), result.output
    assert not (out / "crops").exists()
