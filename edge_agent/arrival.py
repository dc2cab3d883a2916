"""When did the object behind a new violation arrive at its place?

A glove that puts food down on a board covers it: the detector names the food only once the glove has
mostly left, about a second after the food touched the board (docs/benchmarks.md), so an episode dated
from its first sighting starts that much late. The place itself shows the arrival: in the frames before
the first sighting it looks as it did before (the bare board), then differs (glove and food) and stays
different. ``ArrivalClock`` keeps the last seconds of frames, shrunk, and dates an arrival as the first
frame of that run of changed frames. It dates nothing when it cannot see the run begin: the place
changed before the frames it keeps, or it looked as before right up to the first sighting.

A dated arrival only moves an episode's start; the event stage still wants the violation itself seen
for ``min_seen_s`` before it alarms (events.py). The place's look before the arrival also tells later
whether the object is still there (``still_there``) when a hand hides it as its alarm falls due.
"""

from __future__ import annotations

import dataclasses
from collections import deque

import numpy as np

from edge_agent.motion import shrink
from edge_agent.sources import TIME_SLACK_S as SLACK_S
from edge_agent.sources import Frame

WIDTH_PX = 160  # frames are kept this wide: a place's change in colour needs no detail
PIXEL_THRESHOLD = 30  # a pixel changed when one of its colour channels moved this much
CHANGED_SHARE = 0.3  # a place changed when this share of its pixels did


@dataclasses.dataclass(frozen=True)
class Arrival:
    """Where and when an object arrived: the first frame of the changed run, the place (box in the kept
    frames' pixels) and how it looked before (the crop of the last frame that looked as before)."""

    frame: Frame
    box: tuple[int, int, int, int]
    before: np.ndarray

    @property
    def t(self) -> float:
        return self.frame.t


class ArrivalClock:
    """``push`` every frame of a camera; ``arrival(box, t)`` dates when what is in ``box`` got there, and
    ``still_there(arrival)`` tells whether its place still differs from how it looked before."""

    def __init__(self, lookback_s: float) -> None:
        self.lookback_s = lookback_s
        self._frames: deque[Frame] = deque()

    def push(self, frame: Frame) -> None:
        """Keep a shrunk copy of ``frame``; forget those older than the lookback."""
        self._frames.append(dataclasses.replace(frame, image=shrink(frame.image, WIDTH_PX)))
        while self._frames and frame.t - self._frames[0].t > self.lookback_s + SLACK_S:
            self._frames.popleft()

    def arrival(
        self, box: np.ndarray, seen_t: float, frame_wh: tuple[int, int], lookback_s: float
    ) -> Arrival | None:
        """The first frame of the run of frames before ``seen_t`` (at most ``lookback_s`` before it) in which
        ``box`` (pixels of a ``frame_wh`` frame) differs from the earliest one, or None: no such run, or it
        reaches back to the earliest frame, so where it began is out of view. The frame's image is shrunk.
        """
        frames = [f for f in self._frames if seen_t - lookback_s - SLACK_S <= f.t < seen_t - SLACK_S]
        if len(frames) < 3:
            return None
        scale = frames[0].image.shape[1] / frame_wh[0]
        x1, y1, x2, y2 = (round(float(v) * scale) for v in box)
        h, w = frames[0].image.shape[:2]
        x1, y1, x2, y2 = max(0, x1), max(0, y1), min(w, x2), min(h, y2)
        if x2 - x1 < 2 or y2 - y1 < 2:
            return None
        crops = [f.image[y1:y2, x1:x2].astype(np.int16) for f in frames]
        changed = [_changed_share(c, crops[0]) >= CHANGED_SHARE for c in crops]
        k = len(frames) - 1
        while k > 0 and changed[k]:
            k -= 1
        # k: the last frame that looks like the earliest one. The earliest itself does not count: that the
        # place looked the same in two frames is what says it was at rest before the run.
        if k == len(frames) - 1 or k == 0:
            return None
        return Arrival(frames[k + 1], (x1, y1, x2, y2), crops[k])

    def still_there(self, arrival: Arrival) -> bool:
        """Whether the place of ``arrival`` in the newest frame still differs from how it looked before the
        arrival (the object, or a hand over it, is there), rather than looking as it did (it has gone)."""
        if not self._frames:
            return False
        x1, y1, x2, y2 = arrival.box
        crop = self._frames[-1].image[y1:y2, x1:x2].astype(np.int16)
        return crop.shape == arrival.before.shape and _changed_share(crop, arrival.before) >= CHANGED_SHARE


def _changed_share(crop: np.ndarray, before: np.ndarray) -> float:
    diff = np.abs(crop - before)
    if diff.ndim == 3:
        diff = diff.max(axis=2)
    return float(np.count_nonzero(diff > PIXEL_THRESHOLD)) / diff.size
