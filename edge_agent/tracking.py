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

One object, one label over time: for the ``vote_kinds`` (food), a confident box of another class of the
kind continues a track, and each box of the track reports the class with the most confidence seen, a
sighting weighing half after ``vote_half_life_s``: a food read as raw meat for a moment under a chopping
hand stays the vegetable it was. Weak boxes continue only tracks of their own class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

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
    votes: dict[int, float] = field(default_factory=dict)  # class -> decayed confidence seen

    def vote(self, class_id: int, confidence: float, t: float, half_life_s: float) -> int:
        """Add a sighting; the class with the most decayed confidence, which the track now has."""
        keep = 0.5 ** (max(t - self.last_t, 0.0) / half_life_s)
        self.votes = {c: v * keep for c, v in self.votes.items()}
        self.votes[class_id] = self.votes.get(class_id, 0.0) + confidence
        self.class_id = max(self.votes, key=self.votes.__getitem__)
        return self.class_id


class Tracker:
    """Assigns ``tracker_id`` to detections; unmatched weak detections are dropped."""

    def __init__(
        self,
        iou: float = 0.3,
        high_confidence: float = 0.5,
        lost_s: float = 3.0,
        kinds: Mapping[int, str] | None = None,
        same_object: Mapping[str, float] | None = None,
        vote_kinds: tuple[str, ...] = (),
        vote_half_life_s: float = 1.5,
        names: Mapping[int, str] | None = None,
    ) -> None:
        self.iou = iou
        self.high_confidence = high_confidence
        self.lost_s = lost_s
        self.kinds = dict(kinds or {})
        self.same_object = dict(TrackingSection().same_object if same_object is None else same_object)
        self.vote_kinds = tuple(vote_kinds)
        self.vote_half_life_s = vote_half_life_s
        self.names = dict(names or {})
        self._tracks: list[_Track] = []
        self._next_id = 1

    @classmethod
    def from_config(cls, cfg: TrackingSection, labels: list[LabelInfo]) -> Tracker:
        """The tracker a camera uses with a model: its label map says which classes are of one kind."""
        kinds = {label.id: label.kind for label in labels}
        names = {label.id: label.name for label in labels}
        return cls(
            cfg.iou,
            cfg.high_confidence,
            cfg.lost_s,
            kinds,
            cfg.same_object,
            tuple(cfg.vote_kinds),
            cfg.vote_half_life_s,
            names,
        )

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
        voted = class_id.copy()  # the class each box reports: its track's, where its kind votes
        for rows, across in ((strong, True), (weak, False)):  # a weak box continues only its own class
            free = self._match(dets.xyxy, class_id, conf, rows, free, ids, voted, t, across)
        for i in strong:
            if ids[i] < 0:
                track = _Track(self._next_id, int(class_id[i]), dets.xyxy[i].copy(), t)
                track.votes[track.class_id] = float(conf[i])
                self._tracks.append(track)
                ids[i] = self._next_id
                self._next_id += 1
        if (voted != class_id).any():
            dets = dets[np.arange(n)]  # a copy: the caller's detections stay as read
            dets.class_id = voted
            dets.data["class_name"] = np.array([self.names.get(int(c), "") for c in voted])
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

    def _votes(self, class_id: int) -> bool:
        return self.kinds.get(class_id) in self.vote_kinds

    def _match(
        self,
        xyxy: np.ndarray,
        class_id: np.ndarray,
        conf: np.ndarray,
        rows: np.ndarray,
        free: list[int],
        ids: np.ndarray,
        voted: np.ndarray,
        t: float,
        across: bool,
    ) -> list[int]:
        """Greedy highest-IoU-first matching of ``rows`` to the ``free`` tracks of the same class, or
        ``across`` classes of a voting kind; a matched box of a voting kind votes for its track's class."""
        if len(rows) == 0 or not free:
            return free
        boxes = np.array([self._tracks[k].box for k in free])
        iou = iou_matrix(xyxy[rows], boxes)
        track_class = np.array([self._tracks[k].class_id for k in free])
        same = class_id[rows][:, None] == track_class[None, :]
        if across and self.vote_kinds:
            kind = np.array([self.kinds.get(int(c)) for c in class_id[rows]], dtype=object)
            track_kind = np.array([self.kinds.get(int(c)) for c in track_class], dtype=object)
            voting = np.array([k in self.vote_kinds for k in kind])
            same |= voting[:, None] & (kind[:, None] == track_kind[None, :])
        iou = np.where(same, iou, 0.0)
        taken: set[int] = set()
        for flat in np.argsort(-iou, axis=None):
            r, c = divmod(int(flat), len(free))
            if iou[r, c] < self.iou:
                break
            if ids[rows[r]] >= 0 or c in taken:
                continue
            i, track = rows[r], self._tracks[free[c]]
            if self._votes(track.class_id):
                voted[i] = track.vote(int(class_id[i]), float(conf[i]), t, self.vote_half_life_s)
            track.box, track.last_t = xyxy[i].copy(), t
            ids[i] = track.track_id
            taken.add(c)
        return [k for j, k in enumerate(free) if j not in taken]
