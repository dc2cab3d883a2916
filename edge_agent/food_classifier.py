"""A model folder's second stage: a crop classifier that re-reads the category of each food box.

The detector sees a 640x360 frame at 512x288 and judges a 40-pixel piece of food together with the
scene around it, and reads pale raw chicken as cooked food or cooked food as raw meat (held-out clips
7003-011, 7008-015). The classifier sees the food alone, cut from the frame at the camera's resolution,
and was trained on nothing else (``brightkitchen train food-classifier``). A food box takes the classifier's
category where the classifier is sure of it (``model.food_classifier_at``); its score, the detector's
confidence that food is there, stays, unless the classifier is all but certain of the box's category
(``model.food_classifier_vouch_at``): then a weak score is raised to what starts a track.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import supervision as sv

from brightkitchen.model_card import FoodClassifierCard, file_sha256


def cpu_session(path: Path, threads: int) -> ort.InferenceSession:
    """An ONNX Runtime CPU session whose idle pool threads sleep instead of spinning.

    Spinning after every run burned ~3x the CPU of the inference itself at 5 fps
    (bench/edge_throughput.py), CPU that a box's other cameras need."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def food_crop(frame: np.ndarray, xyxy: np.ndarray, context: float) -> np.ndarray:
    """The box grown by ``context`` around its centre, clipped to the frame (a view, not a copy)."""
    height, width = frame.shape[:2]
    x0, y0, x1, y1 = (float(v) for v in xyxy)
    cx, cy, half_w, half_h = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) * context / 2, (y1 - y0) * context / 2
    return frame[
        int(max(cy - half_h, 0)) : int(min(cy + half_h, height)),
        int(max(cx - half_w, 0)) : int(min(cx + half_w, width)),
    ]


class FoodClassifier:
    """One ONNX Runtime session for ``card.food_classifier``; safe to share between camera threads."""

    MIN_SIDE_PX = 4  # a crop thinner than this (a box at the frame's edge) keeps the detector's reading

    def __init__(self, session: ort.InferenceSession, card: FoodClassifierCard) -> None:
        self.session = session
        self.card = card
        self._input_name = session.get_inputs()[0].name
        self.last_ms = 0.0

    @classmethod
    def load(cls, folder: Path, card: FoodClassifierCard, threads: int = 1) -> FoodClassifier:
        """Raises ``ValueError`` when the file's sha256 is not the card's, ``OSError`` when it is missing."""
        path = Path(folder) / card.file
        digest = file_sha256(path)
        if digest != card.sha256:
            raise ValueError(f"{card.file} sha256 {digest[:12]}… != {card.sha256[:12]}…")
        return cls(cpu_session(path, threads), card)

    def probabilities(self, crop: np.ndarray) -> np.ndarray:
        """One BGR crop → one probability per ``card.classes``."""
        size = self.card.input_size
        img = cv2.resize(crop, (size, size), interpolation=cv2.INTER_LINEAR)
        tensor = np.ascontiguousarray(img[..., ::-1].transpose(2, 0, 1)[None], dtype=np.float32)
        tensor *= np.float32(1 / 255)
        (out,) = self.session.run(None, {self._input_name: tensor})
        return out[0]

    def reread(
        self,
        frame: np.ndarray,
        dets: sv.Detections,
        class_ids: Mapping[str, int],
        sure: float,
        vouch_at: float | None = None,
        vouched_score: float = 0.5,
    ) -> sv.Detections:
        """``dets`` with each box of a class the classifier knows relabelled where it gives another of its
        classes at least ``sure``; ``class_ids``: the detector's class id by name. Where the box's category
        is the one the classifier gives at least ``vouch_at``, a score below ``vouched_score`` is raised to
        it: small food that the detector barely sees but the crop shows plainly."""
        t0 = time.perf_counter()
        names = list(self.card.classes)
        food = np.isin(dets.data["class_name"], names) if len(dets) else np.zeros(0, bool)
        changed = False
        class_id, class_name = dets.class_id.copy(), dets.data["class_name"].copy()
        confidence = dets.confidence.copy()
        for i in np.flatnonzero(food):
            crop = food_crop(frame, dets.xyxy[i], self.card.context)
            if min(crop.shape[:2]) < self.MIN_SIDE_PX:
                continue
            p = self.probabilities(crop)
            best = int(p.argmax())
            if names[best] != class_name[i] and p[best] >= sure:
                class_id[i] = class_ids[names[best]]
                class_name[i] = names[best]
                changed = True
            vouched = vouch_at is not None and p[best] >= vouch_at and names[best] == class_name[i]
            if vouched and confidence[i] < vouched_score:
                confidence[i] = vouched_score
                changed = True
        self.last_ms = (time.perf_counter() - t0) * 1000
        if not changed:
            return dets
        return sv.Detections(
            xyxy=dets.xyxy,
            confidence=confidence,
            class_id=class_id,
            data={**dets.data, "class_name": class_name},
        )
