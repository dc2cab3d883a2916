"""What every rule shares: the hit it reports, ROI and active-hours filtering, and reading the label map.

A rule looks at one frame's tracked ``supervision.Detections`` and returns ``Hit`` s: the violations it
sees in that frame. Timing (minimum duration, gaps, re-alarm) is the event stage's job, not the rule's.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time
from typing import ClassVar

import numpy as np
import supervision as sv
from pydantic import BaseModel, ConfigDict

from brightkitchen.contract import DetailValue
from brightkitchen.model_card import LabelInfo
from edge_agent.config import RuleConfig


@dataclass(frozen=True)
class Hit:
    """One violation seen in one frame.

    ``key`` identifies the episode within its rule (built from track ids); ``anchor`` is the pixel box
    where it happens, used to continue an episode when a track id changes; ``indices`` are the rows of
    the frame's detections behind it. ``subject`` is the box of the object behind it (the food on the
    board), where the rule has one: a new episode starts when that place changed (arrival.py), and the
    same object read as another category continues its episode (events.py).
    """

    rule: str
    rule_name: str
    key: tuple[int | str, ...]
    score: float
    anchor: np.ndarray
    indices: tuple[int, ...]
    details: dict[str, DetailValue] = field(default_factory=dict)
    subject: np.ndarray | None = None


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelMap:
    """What each class name means to the rules (kind and attribute), read from the model's labels.json."""

    def __init__(self, labels: list[LabelInfo]) -> None:
        self.by_name = {label.name: label for label in labels}

    def kinds(self, dets: sv.Detections) -> np.ndarray:
        names = dets.data.get("class_name", np.array([], dtype=str))
        return np.array([self.by_name[n].kind if n in self.by_name else "other" for n in names], dtype=object)

    def attributes(self, dets: sv.Detections) -> np.ndarray:
        names = dets.data.get("class_name", np.array([], dtype=str))
        return np.array(
            [self.by_name[n].attribute if n in self.by_name else None for n in names], dtype=object
        )


def points_in_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """Ray casting: which of ``points`` (n x 2) lie inside ``polygon`` (m x 2), same coordinates."""
    x, y = points[:, 0][:, None], points[:, 1][:, None]
    x1, y1 = polygon[:, 0][None, :], polygon[:, 1][None, :]
    x2, y2 = np.roll(polygon[:, 0], -1)[None, :], np.roll(polygon[:, 1], -1)[None, :]
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return (crosses & (x < x_at)).sum(axis=1) % 2 == 1


def _parse_span(span: str) -> tuple[time, time]:
    start, end = span.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def is_active(spans: list[tuple[time, time]], at: datetime) -> bool:
    """Whether local time ``at`` falls in one of the spans; a span may pass midnight (22:00-06:00)."""
    if not spans:
        return True
    now = at.astimezone().time()
    return any((s <= now < e) if s <= e else (now >= s or now < e) for s, e in spans)


class Rule(ABC):
    """A rule type: subclasses set ``type`` and ``Params`` and implement ``find``."""

    type: ClassVar[str]
    Params: ClassVar[type[BaseModel]] = NoParams

    def __init__(self, cfg: RuleConfig, labels: LabelMap, palette: dict[str, list[str]]) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.type
        self.params = cfg.params()
        self.labels = labels
        self.palette = palette
        self._spans = [_parse_span(s) for s in cfg.active_hours]
        self._roi = np.array(cfg.roi, dtype=np.float64) if cfg.roi else None
        self._last: tuple[sv.Detections, tuple[int, int], list[Hit]] | None = None

    def evaluate(self, dets: sv.Detections, frame_wh: tuple[int, int], at: datetime) -> list[Hit]:
        """Hits in this frame: nothing outside active hours, only detections whose foot lies in the ROI."""
        if len(dets) == 0 or not is_active(self._spans, at):
            return []
        if self._last is not None and self._last[0] is dets and self._last[1] == frame_wh:
            return self._last[2]  # the motion gate skipped the frame: the same detections stand
        hits = self.find(dets, self.in_roi(dets, frame_wh), frame_wh)
        self._last = (dets, frame_wh, hits)
        return hits

    def in_roi(self, dets: sv.Detections, frame_wh: tuple[int, int]) -> np.ndarray:
        """Rows of the detections whose foot (bottom middle) lies in the ROI."""
        if self._roi is None:
            return np.arange(len(dets))
        w, h = frame_wh
        feet = np.stack([(dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2 / w, dets.xyxy[:, 3] / h], axis=1)
        return np.flatnonzero(points_in_polygon(feet, self._roi))

    def still_hidden(
        self,
        dets: sv.Detections,
        anchor: np.ndarray,
        details: Mapping[str, DetailValue],
        frame_wh: tuple[int, int],
        at: datetime,
    ) -> bool:
        """Whether this frame, which shows no hit of an episode (at ``anchor``, with ``details``), is
        consistent with the violation going on out of sight (events.py may then alarm when due). A rule
        that cannot tell says no: its episodes alarm only on frames that show them."""
        return False

    @abstractmethod
    def find(self, dets: sv.Detections, candidates: np.ndarray, frame_wh: tuple[int, int]) -> list[Hit]:
        """Hits among the detections at rows ``candidates`` (those inside the ROI) of a frame this size."""

    def track_id(self, dets: sv.Detections, i: int) -> int:
        """The row's track id, or -1-row when untracked (hand-made detections, replay without tracker)."""
        return int(dets.tracker_id[i]) if dets.tracker_id is not None else -1 - int(i)
