"""Stable track ids across frames, ByteTrack-style: confident boxes start and continue tracks, weak ones
only continue them, and a track survives ``lost_s`` unseen so that a hand over the food keeps its id.

Why not a library: supervision 0.31 dropped ``sv.ByteTrack``; its successor (Roboflow ``trackers``) pulls
``opencv-python`` (the GUI build, clashing with the headless one), ``requests`` and ``rich`` onto the box.
Kitchen cameras are fixed and the tracked objects (boards, food, containers) move little and slowly, so
ByteTrack's Kalman motion model buys nothing here: association is by IoU with the last seen box, per class.

One object, one label: the detector's NMS is per class, so an ambiguous food can come out as two boxes on
one spot (vegetable 0.50 and raw_seafood 0.37), or as a box of one category round the whole and one of
another round a part of it (three of six cucumber slices read as cooked food), and the weaker one would
raise a board-misuse hit of its own. Before matching, boxes of one kind (``kinds``: food, board, ...) that
overlap at least ``same_object[kind]`` keep only the most confident. Food overlap is the share of the
smaller box inside the other (a part of a food is that food); boards and containers use IoU, since a
board may lie on a bigger one and a stacked container sits mostly inside the box of the one below it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import supervision as sv

from brightkitchen.model_card import LabelInfo
from edge_agent.config import TrackingSection

PART_KIND = "food"  # the kind whose boxes overlap as whole and part, measured on the smaller box


def _intersections(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairwise intersection areas of two sets of xyxy boxes (n x m), and the areas of each set."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    return inter, (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]), (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of two sets of xyxy boxes (n x m)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    inter, area_a, area_b = _intersections(a, b)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def _share_of_smaller(xyxy: np.ndarray) -> np.ndarray:
    """Pairwise intersection over the smaller box's area (n x n)."""
    inter, area, _ = _intersections(xyxy, xyxy)
    return inter / (np.minimum(area[:, None], area[None, :]) + 1e-9)


@dataclass
class _Track:
    track_id: int
    class_id: int
    box: np.ndarray
    last_t: float


class Tracker:
    """Assigns ``tracker_id`` to detections; unmatched weak detections are dropped."""

    def __init__(
        self,
        iou: float = 0.3,
        high_confidence: float = 0.5,
        lost_s: float = 3.0,
        kinds: Mapping[int, str] | None = None,
        same_object: Mapping[str, float] | None = None,
    ) -> None:
        self.iou = iou
        self.high_confidence = high_confidence
        self.lost_s = lost_s
        self.kinds = dict(kinds or {})
        self.same_object = dict(TrackingSection().same_object if same_object is None else same_object)
        self._tracks: list[_Track] = []
        self._next_id = 1

    @classmethod
    def from_config(cls, cfg: TrackingSection, labels: list[LabelInfo]) -> Tracker:
        """The tracker a camera uses with a model: its label map says which classes are of one kind."""
        kinds = {label.id: label.kind for label in labels}
        return cls(cfg.iou, cfg.high_confidence, cfg.lost_s, kinds, cfg.same_object)

    def update(self, dets: sv.Detections, t: float) -> sv.Detections:
        """Match this frame's detections (at time ``t`` seconds) to the live tracks."""
        dets = self._one_label_per_object(dets)
        self._tracks = [tr for tr in self._tracks if t - tr.last_t <= self.lost_s]
        n = len(dets)
        ids = np.full(n, -1, dtype=int)
        conf = dets.confidence if dets.confidence is not None else np.ones(n)
        class_id = dets.class_id if dets.class_id is not None else np.zeros(n, dtype=int)
        strong = np.flatnonzero(conf >= self.high_confidence)
        weak = np.flatnonzero(conf < self.high_confidence)
        free = list(range(len(self._tracks)))
        for rows in (strong, weak):
            free = self._match(dets.xyxy, class_id, rows, free, ids, t)
        for i in strong:
            if ids[i] < 0:
                self._tracks.append(_Track(self._next_id, int(class_id[i]), dets.xyxy[i].copy(), t))
                ids[i] = self._next_id
                self._next_id += 1
        kept = dets[ids >= 0]
        kept.tracker_id = ids[ids >= 0]
        return kept

    def _one_label_per_object(self, dets: sv.Detections) -> sv.Detections:
        """Drop boxes that overlap a more confident box of another class of the same kind."""
        if not self.kinds or len(dets) < 2 or dets.class_id is None or dets.confidence is None:
            return dets
        kind = np.array([self.kinds.get(int(c), f"class-{c}") for c in dets.class_id], dtype=object)
        iou, part = iou_matrix(dets.xyxy, dets.xyxy), _share_of_smaller(dets.xyxy)
        overlap = np.where((kind == PART_KIND)[:, None], part, iou)
        limit = np.array([self.same_object.get(k, np.inf) for k in kind])
        rival = (
            (overlap >= limit[:, None])
            & (kind[:, None] == kind[None, :])
            & (dets.class_id[:, None] != dets.class_id[None, :])
        )
        keep = np.ones(len(dets), dtype=bool)
        for i in np.argsort(-dets.confidence):
            if keep[i]:
                keep[rival[i] & (dets.confidence < dets.confidence[i])] = False
        return dets if keep.all() else dets[keep]

    def _match(
        self,
        xyxy: np.ndarray,
        class_id: np.ndarray,
        rows: np.ndarray,
        free: list[int],
        ids: np.ndarray,
        t: float,
    ) -> list[int]:
        """Greedy highest-IoU-first matching of ``rows`` to the ``free`` tracks of the same class."""
        if len(rows) == 0 or not free:
            return free
        boxes = np.array([self._tracks[k].box for k in free])
        iou = iou_matrix(xyxy[rows], boxes)
        same = class_id[rows][:, None] == np.array([self._tracks[k].class_id for k in free])[None, :]
        iou = np.where(same, iou, 0.0)
        taken: set[int] = set()
        for flat in np.argsort(-iou, axis=None):
            r, c = divmod(int(flat), len(free))
            if iou[r, c] < self.iou:
                break
            if ids[rows[r]] >= 0 or c in taken:
                continue
            track = self._tracks[free[c]]
            track.box, track.last_t = xyxy[rows[r]].copy(), t
            ids[rows[r]] = track.track_id
            taken.add(c)
        return [k for j, k in enumerate(free) if j not in taken]
