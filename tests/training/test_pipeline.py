"""A tiny end-to-end run: synth → fit (1 epoch) → export → ONNX inference equal to Ultralytics' own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from brightkitchen.model_card import ModelCard, file_sha256, newest_model
from edge_agent.detector import Detector
from training.classes import CLASS_NAMES
from training.fit import epoch_line

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(tiny_models: dict[str, Path]) -> dict[str, Path]:
    """The session's tiny baseline (tests/training/conftest.py): synth seed 5151, 1 epoch, export 160x96."""
    models = tiny_models
    return {"data": models["synth"], "run": models["baseline_run"], "model": models["baseline"]}


def test_fit_writes_weights_log_curves_and_summary(tiny_run: dict[str, Path]) -> None:
    run = tiny_run["run"]
    assert (run / "weights" / "best.pt").exists()
    assert (run / "results.png").stat().st_size > 10_000  # the training curves
    log = (run / "train.log").read_text()
    line = next(x for x in log.splitlines() if "epoch 1/1:" in x)
    assert float(re.search(r"train_box_loss ([0-9.]+)", line).group(1)) > 0 and "mAP50" in line
    fit = json.loads((run / "fit.json").read_text())
    assert fit["dataset"]["seed"] == 5151 and fit["train_seconds"] > 0
    # --set KEY=VALUE reaches Ultralytics (its args.yaml) and is recorded
    assert fit["options"]["extra"] == {"warmup_epochs": 0}
    assert "warmup_epochs: 0\n" in (run / "args.yaml").read_text()


def test_export_writes_a_complete_model_folder(tiny_run: dict[str, Path]) -> None:
    model = tiny_run["model"]
    card = ModelCard.read(model)
    assert card.sha256 == file_sha256(model / "model.onnx")
    assert (card.input_width, card.input_height, card.opset) == (160, 96, 18)
    assert card.classes == list(CLASS_NAMES)
    assert card.latency_ms["cpu_2_threads"] > 0
    assert card.training["dataset"]["seeds"] == [5151]
    assert card.training["epochs"] == 1 and card.training["train_arguments"] == {"warmup_epochs": 0}
    labels = json.loads((model / "labels.json").read_text())
    assert [x["name"] for x in labels] == list(CLASS_NAMES)
    assert "sha256" in (model / "README.md").read_text()


def test_onnx_runtime_matches_ultralytics(tiny_run: dict[str, Path]) -> None:
    """The edge's path (letterbox → ONNX Runtime → decode/NMS → frame coordinates) equals Ultralytics'.

    Checked stage by stage, so that an untrained network's near-tied scores cannot make it flaky: the same
    input tensor as Ultralytics' LetterBox, the same raw output as the PyTorch model, and the same final
    boxes as Ultralytics' own NMS and rescaling applied to a raw output. That last stage takes the shipped
    model's output: the tiny network scores thousands of candidates exactly alike (0.00113), and NMS keeps
    a different subset of exact ties depending on sort order, which is arbitrary on both sides.
    """
    from training import offline

    offline.prepare()
    import torch
    from ultralytics import YOLO
    from ultralytics.data.augment import LetterBox
    from ultralytics.utils.nms import non_max_suppression
    from ultralytics.utils.ops import scale_boxes

    detector = Detector.load(tiny_run["model"], threads=1)
    shipped = Detector.load(newest_model(), threads=1)
    net = YOLO(str(tiny_run["run"] / "weights" / "best.pt")).model.float().eval()
    shape = (detector.input_height, detector.input_width)
    for image in sorted((tiny_run["data"] / "images").rglob("*.jpg"))[:4]:
        frame = cv2.imread(str(image))
        tensor, box = detector.preprocess(frame)
        theirs_img = LetterBox(new_shape=shape, auto=False, stride=32)(image=frame)
        ours_img = np.rint(tensor[0].transpose(1, 2, 0)[..., ::-1] * 255).astype(np.uint8)
        np.testing.assert_array_equal(ours_img, theirs_img)

        (onnx_raw,) = detector.session.run(None, {detector.session.get_inputs()[0].name: tensor})
        with torch.no_grad():
            torch_raw = net(torch.from_numpy(tensor))[0].numpy()
        np.testing.assert_allclose(onnx_raw, torch_raw, rtol=1e-3, atol=1e-3)

        tensor, box = shipped.preprocess(frame)
        (raw,) = shipped.session.run(None, {shipped.session.get_inputs()[0].name: tensor})
        for multi_label in (False, True):  # the edge's decoding, and the validator's (train eval)
            ours = shipped.postprocess(
                raw, box, frame.shape[:2], confidence=0.001, iou=0.7, max_det=300, multi_label=multi_label
            )
            (theirs,) = non_max_suppression(
                torch.from_numpy(raw), conf_thres=0.001, iou_thres=0.7, max_det=300, multi_label=multi_label
            )
            theirs[:, :4] = scale_boxes(tensor.shape[2:], theirs[:, :4], frame.shape[:2])
            theirs = theirs.numpy()
            assert len(ours) == len(theirs)
            mine = np.column_stack([ours.xyxy, ours.confidence, ours.class_id])
            _assert_same_rows(mine, theirs)


def _assert_same_rows(mine: np.ndarray, theirs: np.ndarray) -> None:
    """Rows (x1, y1, x2, y2, score, class) equal one to one, in any order: equal scores may come out either
    way round."""
    free = list(range(len(mine)))
    for row in theirs:
        same = [
            k
            for k in free
            if mine[k, 5] == row[5]
            and abs(mine[k, 4] - row[4]) <= 1e-6
            and np.allclose(mine[k, :4], row[:4], atol=1e-3)
        ]
        assert same, f"no detection of ours matches {row.tolist()}"
        free.remove(same[0])


def test_epoch_line_keeps_train_losses_when_the_epoch_did_not_validate() -> None:
    """With val=False the validation metrics are zeros; they must neither hide the train losses nor show."""
    import torch

    trainer = SimpleNamespace(
        epoch=4,
        epochs=30,
        tloss=torch.tensor([1.5, 2.25, 1.125]),
        label_loss_items=lambda loss, prefix: {
            f"{prefix}/{k}": float(v) for k, v in zip(("box_loss", "cls_loss", "dfl_loss"), loss, strict=True)
        },
        metrics={"metrics/mAP50(B)": 0.0, "val/box_loss": 0.0},
        args=SimpleNamespace(val=False),
        stop=False,
    )
    line = epoch_line(trainer)
    assert line == "epoch 5/30: train_box_loss 1.5000, train_cls_loss 2.2500, train_dfl_loss 1.1250"
    trainer.stop, trainer.metrics = True, {"metrics/mAP50(B)": 0.875, "val/box_loss": 1.0}  # last epoch
    assert epoch_line(trainer).endswith("train_dfl_loss 1.1250, mAP50 0.8750")
    trainer.epoch = 30  # final_eval: best.pt validated again, reported as epoch N+1
    trainer.metrics = {"metrics/mAP50(B)": 0.9, "val/box_loss": 1.0}
    assert epoch_line(trainer) == "best.pt: mAP50 0.9000"
