"""Detector session settings that matter on a small multi-camera box."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent import detector
from edge_agent.detector import Detector


def test_idle_pool_threads_do_not_spin(model_dir: Path) -> None:
    # Spinning pool threads burned ~3x the inference's own CPU between 5-fps frames
    # (bench/edge_throughput.py): half a 2-core box's capacity for cameras.
    options = Detector.load(model_dir, threads=2).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize("n", [1, 12, 300, 1500])
def test_nms_matches_torchvision_on_both_paths(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The all-pairs path (edge) and the row-by-row one (eval's many boxes) keep what torchvision keeps."""
    torch = pytest.importorskip("torch")
    from torchvision.ops import nms as reference

    rng = np.random.default_rng(n)
    centres = np.repeat(rng.uniform(0, 600, (n // 4 + 1, 2)), 4, axis=0)[:n] + rng.normal(0, 4, (n, 2))
    sizes = rng.uniform(10, 90, (n, 2))
    boxes = np.hstack([centres - sizes / 2, centres + sizes / 2]).astype(np.float32)
    scores = rng.permutation(n).astype(np.float32) / n + 0.01  # distinct: no tie-breaking differences
    expected = reference(torch.from_numpy(boxes), torch.from_numpy(scores), 0.5).numpy()
    np.testing.assert_array_equal(detector.nms(boxes, scores, 0.5), expected)
    monkeypatch.setattr(detector, "MATRIX_NMS_BOXES", 0)
    np.testing.assert_array_equal(detector.nms(boxes, scores, 0.5), expected)


def test_preprocess_is_rgb_chw_in_0_1_of_the_letterboxed_frame(model_dir: Path) -> None:
    det = Detector.load(model_dir, threads=1)
    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), np.uint8)
    tensor, box = det.preprocess(frame)
    padded, same_box = detector.letterbox(frame, det.input_width, det.input_height)
    assert box == same_box and tensor.shape == (1, 3, det.input_height, det.input_width)
    np.testing.assert_array_equal(tensor, cv2.dnn.blobFromImage(padded, 1 / 255.0, swapRB=True))


def test_default_nms_keeps_both_containers_of_a_stack() -> None:
    """The upper and lower container of a stack overlap a lot (IoU 0.64 on tuning clip 7200-000 with model
    0.5.0); class-wise NMS at the former default IoU 0.5 kept only the upper one, and the stack was missed."""
    from edge_agent.config import ModelSection

    boxes = np.array([[123, 217, 262, 345], [119, 246, 274, 359]], float)
    scores = np.array([0.9, 0.47])
    assert sorted(detector.nms(boxes, scores, ModelSection(path=Path("m")).iou).tolist()) == [0, 1]


def test_least_score_per_kind(model_dir: Path) -> None:
    """The shipped model section keeps food from 0.25 and everything else from 0.35: an anchor is kept
    when its best class beats that class's least score."""
    from edge_agent.config import ModelSection

    det = Detector.load(model_dir, threads=1)
    section = ModelSection(path=model_dir)
    floors = detector.class_thresholds(det.labels, section.confidence, section.confidence_by_kind)
    names = list(det.class_names)
    food, container = names.index("raw_seafood"), names.index("container")
    assert floors[food] == 0.25 and floors[container] == section.confidence == 0.35
    raw = np.zeros((1, 4 + len(names), 3), np.float32)
    raw[0, :4] = [[50, 150, 250], [50, 50, 50], [20, 20, 20], [20, 20, 20]]  # cx, cy, w, h per anchor
    raw[0, 4 + food, 0] = 0.3  # weak food: kept
    raw[0, 4 + container, 1] = 0.3  # weak container: dropped
    raw[0, 4 + container, 2] = 0.6
    box = detector.Letterbox(1.0, 0, 0)
    kept = det.postprocess(raw, box, (100, 300), floors, 0.7, 300)
    assert sorted(kept.data["class_name"].tolist()) == ["container", "raw_seafood"]
    assert len(det.postprocess(raw, box, (100, 300), section.confidence, 0.7, 300)) == 1
