"""The detector: a YOLO model from a ``models/`` folder run by ONNX Runtime on the CPU.

Pre- and post-processing match Ultralytics' own (letterbox with grey 114 padding, class-offset NMS), so
the edge's boxes equal those of ``YOLO(...).predict`` on the same image (tests/training/test_export.py).
The result is a ``supervision.Detections`` in frame pixels, with ``data["class_name"]``.

Example::

    det = Detector.load(Path("models/bk-detector-1.0.0"), threads=2)
    dets = det.detect(frame_bgr)            # supervision.Detections
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv

from brightkitchen.model_card import CARD_FILE, LABELS_FILE, MODEL_FILE, LabelInfo, ModelCard, file_sha256
from edge_agent.food_classifier import FoodClassifier, cpu_session
from edge_agent.tracking import iou_matrix

log = logging.getLogger(__name__)
PAD_VALUE = 114
MATRIX_NMS_BOXES = 1024
MAX_NMS_CANDIDATES = 30000  # Ultralytics' max_nms: candidates kept for NMS in multi-label decoding


class ModelLoadError(RuntimeError):
    """A model folder that cannot be used (missing file, wrong hash, unreadable ONNX)."""


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the network input: scale, then padding on the left and top."""

    scale: float
    pad_x: float
    pad_y: float


def letterbox(frame: np.ndarray, width: int, height: int) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad to ``width``x``height``, as Ultralytics' LetterBox does."""
    h, w = frame.shape[:2]
    scale = min(height / h, width / w)
    new_w, new_h = round(w * scale), round(h * scale)
    if (new_w, new_h) != (w, h):
        frame = cv2.resize(frame, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    dw, dh = (width - new_w) / 2, (height - new_h) / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    padded = cv2.copyMakeBorder(frame, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    return padded, Letterbox(scale, left, top)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices in descending score order.

    Up to ``MATRIX_NMS_BOXES`` boxes (the edge's case) all pairwise IoUs are computed at once, 3-6x faster
    than row by row; beyond (eval's thousands of candidates at confidence 0.001) row by row, in little memory.
    """
    order = scores.argsort()[::-1]
    if len(order) <= MATRIX_NMS_BOXES:
        iou = iou_matrix(boxes[order], boxes[order])
        keep = np.ones(len(order), dtype=bool)
        for i in range(len(order)):
            if keep[i]:
                keep[i + 1 :] &= iou[i, i + 1 :] <= iou_threshold
        return order[keep].astype(np.int64)
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / (areas[i] + areas[rest] - inter + 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def class_thresholds(labels: list[LabelInfo], confidence: float, by_kind: Mapping[str, float]) -> np.ndarray:
    """Least score per class: ``by_kind`` for the classes of those kinds, ``confidence`` for the rest."""
    return np.array([by_kind.get(label.kind, confidence) for label in labels], dtype=np.float32)


class Detector:
    """One ONNX Runtime session for a model folder; safe to share between camera threads."""

    def __init__(
        self,
        folder: Path,
        session: ort.InferenceSession,
        card: ModelCard,
        labels: list[LabelInfo],
        food_classifier: FoodClassifier | None = None,
    ):
        self.folder = folder
        self.food_classifier = food_classifier
        self.class_ids = {label.name: label.id for label in labels}
        self.session = session
        self.card = card
        self.labels = labels
        self.class_names = np.array([label.name for label in labels])
        self._input_name = session.get_inputs()[0].name
        self.last_inference_ms = 0.0
        self.last_reread_ms = 0.0
        _, _, self.input_height, self.input_width = session.get_inputs()[0].shape

    @classmethod
    def load(cls, folder: Path, threads: int = 2, expected_sha256: str | None = None) -> Detector:
        """Load a model folder, checking that model.onnx has the sha256 of its card (and of the caller)."""
        folder = Path(folder)
        try:
            card = ModelCard.model_validate_json((folder / CARD_FILE).read_text())
            labels = [LabelInfo.model_validate(x) for x in json.loads((folder / LABELS_FILE).read_text())]
            digest = file_sha256(folder / MODEL_FILE)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"model folder {folder}: {exc}") from exc
        for want in filter(None, (card.sha256, expected_sha256)):
            if digest != want:
                raise ModelLoadError(
                    f"model folder {folder}: model.onnx sha256 {digest[:12]}… != {want[:12]}…"
                )
        try:
            session = cpu_session(folder / MODEL_FILE, threads)
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(
                f"model folder {folder}: ONNX Runtime cannot load model.onnx: {exc}"
            ) from exc
        if [x.name for x in labels] != card.classes:
            raise ModelLoadError(f"model folder {folder}: labels.json and card.json list different classes")
        classifier = cls._load_food_classifier(folder, card, labels)
        log.info(
            "loaded model %s (%dx%d, %d classes, %d threads%s)",
            card.ref,
            card.input_width,
            card.input_height,
            len(labels),
            threads,
            ", with a food classifier" if classifier else "",
        )
        return cls(folder, session, card, labels, classifier)

    @staticmethod
    def _load_food_classifier(
        folder: Path, card: ModelCard, labels: list[LabelInfo]
    ) -> FoodClassifier | None:
        spec = card.food_classifier
        if spec is None:
            return None
        food = {x.name for x in labels if x.kind == "food"}
        if unknown := [name for name in spec.classes if name not in food]:
            raise ModelLoadError(f"model folder {folder}: food classifier classes {unknown} are not food")
        try:
            return FoodClassifier.load(folder, spec)
        except Exception as exc:  # a missing file, a wrong hash, or onnxruntime's own untyped errors
            raise ModelLoadError(f"model folder {folder}: food classifier: {exc}") from exc

    def preprocess(self, frame: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """BGR frame → 1x3xHxW float32 RGB tensor in 0..1, and how it was letterboxed."""
        img, box = letterbox(frame, self.input_width, self.input_height)
        # Contiguous planes scaled straight into place, BGR→RGB by plane order: less CPU than
        # cv2.dnn.blobFromImage or a strided numpy transpose.
        tensor = np.empty((1, 3, *img.shape[:2]), np.float32)
        for c, plane in enumerate(cv2.split(img)):
            np.multiply(plane, np.float32(1 / 255), out=tensor[0, 2 - c], casting="unsafe")
        return tensor, box

    def detect(
        self,
        frame: np.ndarray,
        confidence: float | np.ndarray = 0.25,
        iou: float = 0.7,
        max_det: int = 300,
        multi_label: bool = False,
    ) -> sv.Detections:
        """Run the model on one BGR frame; boxes in the frame's pixel coordinates."""
        tensor, box = self.preprocess(frame)
        t0 = time.perf_counter()
        (raw,) = self.session.run(None, {self._input_name: tensor})
        self.last_inference_ms = (time.perf_counter() - t0) * 1000
        return self.postprocess(raw, box, frame.shape[:2], confidence, iou, max_det, multi_label)

    def reread_food(
        self,
        frame: np.ndarray,
        dets: sv.Detections,
        sure: float | None,
        vouch_at: float | None = None,
        vouched_score: float = 0.5,
    ) -> sv.Detections:
        """``dets`` with food categories re-read by the folder's food classifier where it is at least
        ``sure``, and weak scores of food it is ``vouch_at`` sure of raised to ``vouched_score``
        (``FoodClassifier.reread``); unchanged without a classifier or with ``sure`` None. Its time in
        ``last_reread_ms``."""
        self.last_reread_ms = 0.0
        if self.food_classifier is None or sure is None or not len(dets):
            return dets
        out = self.food_classifier.reread(frame, dets, self.class_ids, sure, vouch_at, vouched_score)
        self.last_reread_ms = self.food_classifier.last_ms
        return out

    def postprocess(
        self,
        raw: np.ndarray,
        box: Letterbox,
        frame_hw: tuple[int, int],
        confidence: float | np.ndarray,
        iou: float,
        max_det: int,
        multi_label: bool = False,
    ) -> sv.Detections:
        """Decode the (1, 4+classes, anchors) output: best class per anchor, threshold, class-wise NMS.

        ``confidence``: one least score, or one per class (``class_thresholds``). ``multi_label`` keeps
        every class above it of an anchor as its own candidate, as Ultralytics' validator does for mAP; the
        edge keeps only the best class.
        """
        out = raw[0]  # (4 + classes) x anchors; reduce along contiguous rows, transpose only the survivors
        floor = np.broadcast_to(np.asarray(confidence, dtype=np.float32), (out.shape[0] - 4,))
        if multi_label:
            class_id, anchors = np.nonzero(out[4:] > floor[:, None])
            scores = out[4 + class_id, anchors]
            top = np.argsort(-scores)[:MAX_NMS_CANDIDATES]
            class_id, anchors, scores = class_id[top], anchors[top], scores[top]
            cx, cy, w, h = out[:4, anchors]
        else:
            mask = out[4:].max(axis=0) > floor.min()  # cheap over all anchors; the class's own floor below
            pred = out[:, mask].T  # kept anchors x (4 + classes)
            class_id = pred[:, 4:].argmax(axis=1)
            scores = pred[np.arange(len(pred)), 4 + class_id]
            above = scores > floor[class_id]
            pred, class_id, scores = pred[above], class_id[above], scores[above]
            cx, cy, w, h = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
        if not len(scores):
            return sv.Detections.empty()
        xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        offset = class_id[:, None].astype(np.float32) * 7680.0  # Ultralytics' max_wh: NMS per class
        keep = nms(xyxy + offset, scores, iou)[:max_det]
        xyxy, scores, class_id = xyxy[keep], scores[keep], class_id[keep]
        xyxy = (xyxy - np.array([box.pad_x, box.pad_y, box.pad_x, box.pad_y])) / box.scale
        height, width = frame_hw
        xyxy = np.clip(xyxy, 0, [width, height, width, height]).astype(np.float32)
        return sv.Detections(
            xyxy=xyxy,
            confidence=scores.astype(np.float32),
            class_id=class_id.astype(int),
            data={"class_name": self.class_names[class_id]},
        )


class DetectorSlot:
    """The detector that a box's cameras share, switchable while they run; a failed switch keeps the old."""

    def __init__(self, detector: Detector) -> None:
        self.current = detector
        self.previous: Detector | None = None
        self._lock = threading.Lock()

    def switch(self, folder: Path, threads: int, expected_sha256: str | None = None) -> Detector:
        """Load ``folder`` and make it current; raises ``ModelLoadError`` and changes nothing on failure."""
        new = Detector.load(folder, threads=threads, expected_sha256=expected_sha256)
        with self._lock:
            self.previous, self.current = self.current, new
        log.info("switched model %s -> %s", self.previous.card.ref, new.card.ref)
        return new

    def rollback(self) -> Detector:
        """Go back to the model before the last switch."""
        with self._lock:
            if self.previous is None:
                raise ModelLoadError("no previous model to roll back to")
            self.previous, self.current = self.current, self.previous
        log.info("rolled back model %s -> %s", self.previous.card.ref, self.current.card.ref)
        return self.current
