"""The motion gate: run the detector only when the scene changed since it last ran, or every few seconds.

Frames are compared at low resolution (grey, blurred, ``width_px`` wide) against the frame the detector
last saw, so slow changes add up instead of slipping under the threshold frame by frame. The forced
interval keeps a violation that stands still (a stack left in place) in view of the rules. While things
keep moving, ``max_detect_fps`` caps the detector's rate (Frigate's ``detect.fps`` idea): the rules wait
seconds before they alert, so a few detections a second see an episode begin, and the pipeline detects
the frames the cap skipped just before an episode began, so that its onset is not delayed. Once an
episode's alarm is due (it has lasted its rule's minimum duration), the cap is lifted until it alerts or
fades, so the alarm is decided on the first frame that shows it then, not up to one cap interval later.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.config import MotionSection
from edge_agent.sources import TIME_SLACK_S as SLACK_S


def shrink(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` at most ``width`` wide, averaged down: bilinear halvings, then area."""
    h, w = image.shape[:2]
    width = min(width, w)
    height = max(1, round(h * width / w))
    while image.shape[1] >= 4 * width and image.shape[0] >= 4 * height:
        # A bilinear halving averages 2x2 pixels exactly, like INTER_AREA, at a fraction of its cost.
        image = cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


class MotionGate:
    """``check(image, t)`` says whether to run the detector on this frame; counts what it skipped."""

    def __init__(self, cfg: MotionSection) -> None:
        self.cfg = cfg
        self._reference: np.ndarray | None = None
        self._last_detect_t = float("-inf")
        self.frames_checked = 0
        self.frames_skipped = 0

    def _small(self, image: np.ndarray) -> np.ndarray:
        small = shrink(image, self.cfg.width_px)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def changed_fraction(self, small: np.ndarray) -> float:
        """Share of low-resolution pixels that differ from the reference by more than the threshold."""
        if self._reference is None or self._reference.shape != small.shape:
            return 1.0
        diff = cv2.absdiff(small, self._reference)
        return float(np.count_nonzero(diff > self.cfg.pixel_threshold)) / diff.size

    def check(self, image: np.ndarray, t: float, alarm_due: bool = False) -> bool:
        """True when the detector should run on this frame (and it becomes the new reference).

        ``alarm_due``: an episode has lasted long enough to alert, so ``max_detect_fps`` does not hold back
        this frame.
        """
        self.frames_checked += 1
        if not self.cfg.enabled:
            return True
        since = t - self._last_detect_t
        forced = since >= self.cfg.forced_interval_s - SLACK_S
        cap = None if alarm_due else self.cfg.max_detect_fps
        if not forced and cap is not None and since < 1 / cap - SLACK_S:
            self.frames_skipped += 1  # too soon: not even worth comparing
            return False
        small = self._small(image)
        if forced or self.changed_fraction(small) >= self.cfg.min_area_fraction:
            self._reference = small
            self._last_detect_t = t
            return True
        self.frames_skipped += 1
        return False
