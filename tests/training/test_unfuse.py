"""``train weights-from-onnx``: a model folder's ONNX file back to weights that Ultralytics fine-tunes."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from brightkitchen.cli import app
from edge_agent.detector import Detector

pytestmark = pytest.mark.slow


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_rebuilt_weights_reproduce_the_onnx_model_and_fine_tune(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from training import offline

    offline.prepare()
    from ultralytics import YOLO

    model, rebuilt = tiny_models["baseline"], tmp_path / "rebuilt.pt"
    cmd = ["train", "weights-from-onnx", "--model", str(model), "--out", str(rebuilt)]
    result = _invoke(*cmd, "--calibration", str(tiny_models["synth"]))
    assert result.exit_code == 0, result.output
    assert "reproduces" in result.output

    # on images that were not used for calibration, PyTorch with the rebuilt weights = ONNX Runtime
    detector = Detector.load(model, threads=1)
    net = YOLO(str(rebuilt)).model.float().eval()
    assert list(net.names.values()) == list(detector.class_names)
    name = detector.session.get_inputs()[0].name
    import torch

    for image in sorted((tiny_models["benchmark"] / "images").rglob("*.jpg"))[:3]:
        tensor, _ = detector.preprocess(cv2.imread(str(image)))
        (theirs,) = detector.session.run(None, {name: tensor})
        with torch.no_grad():
            ours = net(torch.from_numpy(tensor))[0].numpy()
        np.testing.assert_allclose(ours[:, 4:], theirs[:, 4:], atol=0.01)
        np.testing.assert_allclose(ours[:, :4], theirs[:, :4], atol=0.5)

    # and Ultralytics trains from them, taking every tensor
    run = tmp_path / "run"
    fit = ["train", "fit", "--data", str(tiny_models["synth"]), "--out", str(run), "--weights", str(rebuilt)]
    result = _invoke(*fit, "--epochs", "1", "--imgsz", "160", "--batch", "4", "--workers", "0")
    assert result.exit_code == 0, result.output
    assert (run / "weights" / "best.pt").exists()
    assert "Transferred 499/499 items" in (run / "train.log").read_text()


def test_a_model_of_another_architecture_is_refused_by_name(
    tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    result = _invoke(
        "train",
        "weights-from-onnx",
        "--model",
        str(tiny_models["baseline"]),
        "--calibration",
        str(tiny_models["synth"]),
        "--out",
        str(tmp_path / "w.pt"),
        "--arch",
        "yolo11s.yaml",
    )
    assert result.exit_code == 2
    message = " ".join(result.output.replace("│", " ").split())  # unwrapped from typer's error box
    assert "is not a yolo11s.yaml network with 11 classes: its weight model.0.conv.weight" in message
    assert not (tmp_path / "w.pt").exists()


def test_a_class_the_model_lacks_starts_as_its_kind(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    """0.5.0 has one container class; weights for the current set start container_empty as container."""
    from training import offline
    from training.classes import CLASS_NAMES, CLASSES, counterparts

    offline.prepare()
    import torch
    from ultralytics import YOLO

    model, rebuilt = Path("models/bk-detector-0.5.0"), tmp_path / "rebuilt.pt"
    cmd = ["train", "weights-from-onnx", "--model", str(model), "--out", str(rebuilt)]
    result = _invoke(*cmd, "--calibration", str(tiny_models["synth"]), "--images", "8")
    assert result.exit_code == 0, result.output

    detector = Detector.load(model, threads=1)
    sources = counterparts(CLASSES, detector.labels)
    assert [detector.class_names[i] for i in sources] == [*detector.class_names, "container"]
    assert (
        counterparts(CLASSES, detector.labels[:5])[-1] is None
    )  # boards only: nothing to start a container from

    net = YOLO(str(rebuilt)).model.float().eval()
    assert list(net.names.values()) == list(CLASS_NAMES)
    image = sorted((tiny_models["benchmark"] / "images").rglob("*.jpg"))[0]
    tensor, _ = detector.preprocess(cv2.imread(str(image)))
    (theirs,) = detector.session.run(None, {detector.session.get_inputs()[0].name: tensor})
    with torch.no_grad():
        ours = net(torch.from_numpy(tensor))[0].numpy()
    container, empty = CLASS_NAMES.index("container"), CLASS_NAMES.index("container_empty")
    np.testing.assert_allclose(ours[:, 4 : 4 + len(detector.labels)], theirs[:, 4:], atol=0.01)
    np.testing.assert_allclose(ours[:, 4 + empty], ours[:, 4 + container])
