"""Frame sources: video files (paced or fast, optionally looped), RTSP/HTTP streams and USB devices.

A source yields ``Frame`` s at the camera's configured rate, never raises on I/O trouble once running: it
reopens a lost stream with exponential backoff and says so in ``online``/``error``, which the agent's
stats report. Replay opens files with ``strict=True`` and gets a ``SourceError`` instead.

Example::

    for frame in prefetch(FrameSource(camera_cfg, stop_event).frames()):
        ...

``prefetch`` decodes in a thread of its own, a frame or two ahead, so that decoding overlaps inference.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from edge_agent.config import CameraConfig

log = logging.getLogger(__name__)
T = TypeVar("T")
_END = object()


def prefetch(items: Iterator[T], depth: int = 2, name: str = "prefetch") -> Iterator[T]:
    """Iterate ``items`` in a background thread, at most ``depth`` ahead; its exceptions are re-raised here.

    Leaving the loop early stops the thread and closes ``items`` (a source's capture is released).
    """
    q: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    done = threading.Event()

    def put(entry: tuple[object, BaseException | None]) -> bool:
        while not done.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    break
            else:
                put((_END, None))
        except BaseException as exc:  # handed to the consumer, which raises it
            put((_END, exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item, exc = q.get()
            if item is _END:
                if exc is not None:
                    raise exc
                return
            yield item  # type: ignore[misc]
    finally:
        done.set()
        thread.join(timeout=5)


class SourceError(RuntimeError):
    """A source that cannot be read at all (missing or corrupt file) in strict mode."""


# Frame times are quotients (n / fps) and their differences floats: 3 s from t = 1.6 to t = 4.6 comes out
# as 2.9999999999999996. Durations between frames are compared with this much slack.
TIME_SLACK_S = 1e-6


@dataclass(frozen=True)
class Frame:
    """One frame: ``t`` is seconds since the source started (video time for files), ``at`` wall time."""

    camera: str
    index: int
    t: float
    at: datetime
    image: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]


def check_video_file(path: Path) -> float | None:
    """Raise ``SourceError`` unless ``path`` opens as a video and yields a first frame; its duration in
    seconds as the container states it (None where it does not)."""
    if not Path(path).is_file():
        raise SourceError(f"video file {path} does not exist")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened() or not cap.read()[0]:
            raise SourceError(f"cannot read video file {path} (corrupt or not a video?)")
        frames, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
        return frames / fps if frames > 0 and fps > 0 else None
    finally:
        cap.release()


def is_file_source(source: str) -> bool:
    return "://" not in source and not source.startswith("usb:")


class FrameSource:
    """Reads one camera; ``frames()`` ends at a non-looping file's end or when ``stop`` is set."""

    def __init__(self, cfg: CameraConfig, stop: threading.Event | None = None, strict: bool = False) -> None:
        self.cfg = cfg
        self.stop = stop or threading.Event()
        self.strict = strict
        self.is_file = is_file_source(cfg.source)
        self.online = False
        self.error: str | None = None
        self.frames_read = 0
        self.last_frame_monotonic: float | None = None
        self._index = 0
        self._t0 = time.monotonic()

    def _open(self) -> cv2.VideoCapture:
        src = self.cfg.source
        if src.startswith("usb:"):
            cap = cv2.VideoCapture(int(src[4:]))
        elif self.is_file:
            if not Path(src).is_file():
                raise SourceError(f"camera {self.cfg.id}: video file {src} does not exist")
            cap = cv2.VideoCapture(src, cv2.CAP_FFMPEG)
        else:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                int(self.cfg.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                int(self.cfg.read_timeout_s * 1000),
            ]
            cap = cv2.VideoCapture(src, cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            what = "video file (corrupt or not a video?)" if self.is_file else "stream"
            raise SourceError(f"camera {self.cfg.id}: cannot open {what} {src}")
        return cap

    def _set_offline(self, error: str) -> None:
        if self.online or self.error != error:
            log.warning("camera %s offline: %s", self.cfg.id, error)
        self.online, self.error = False, error

    def frames(self) -> Iterator[Frame]:
        """Frames at ``cfg.fps``; reconnects with backoff (non-strict) until stopped."""
        backoff = self.cfg.reconnect_min_s
        started_wall = datetime.now(UTC)
        t_offset = 0.0  # video time carried over when a looped file starts again
        while not self.stop.is_set():
            try:
                cap = self._open()
            except SourceError as exc:
                if self.strict:
                    raise
                self._set_offline(str(exc))
                self.stop.wait(backoff)
                backoff = min(backoff * 2, self.cfg.reconnect_max_s)
                continue
            got_any = False
            try:
                for frame in self._read(cap, started_wall, t_offset):
                    got_any = True
                    backoff = self.cfg.reconnect_min_s
                    yield frame
                    t_offset = frame.t + 1 / self.cfg.fps
            finally:
                cap.release()
            if self.is_file:
                if not got_any:
                    err = f"camera {self.cfg.id}: video file {self.cfg.source} has no readable frames"
                    if self.strict:
                        raise SourceError(err)
                    self._set_offline(err)
                elif not self.cfg.loop:
                    log.info("camera %s: end of video file %s", self.cfg.id, self.cfg.source)
                    self.online = False
                    return
                else:
                    continue
            else:
                self._set_offline(f"camera {self.cfg.id}: stream {self.cfg.source} stopped sending frames")
            self.stop.wait(backoff)
            backoff = min(backoff * 2, self.cfg.reconnect_max_s)

    def _read(self, cap: cv2.VideoCapture, started_wall: datetime, t_offset: float) -> Iterator[Frame]:
        """Frames from an open capture, thinned to ``cfg.fps``; files paced at their own rate if realtime."""
        file_fps = cap.get(cv2.CAP_PROP_FPS) if self.is_file else 0.0
        file_fps = file_fps if 0 < file_fps < 1000 else 25.0
        step = 1 / self.cfg.fps
        opened = time.monotonic()
        next_t = 0.0 if self.is_file else time.monotonic() - self._t0
        n = 0
        while not self.stop.is_set():
            if not cap.grab():  # frames thinned away are decoded (H.264 needs them) but never converted
                return
            t = n / file_fps if self.is_file else time.monotonic() - self._t0
            n += 1
            if t + 1e-6 < next_t:
                continue
            ok, image = cap.retrieve()
            if not ok or image is None:
                return
            next_t = next_t + step if t < next_t + step else t + step
            if self.is_file and self.cfg.realtime:
                self.stop.wait(max(0.0, opened + t - time.monotonic()))
            self.online, self.error = True, None
            self.frames_read += 1
            self.last_frame_monotonic = time.monotonic()
            if self.is_file:
                t += t_offset
            at = started_wall + timedelta(seconds=t) if self.is_file else datetime.now(UTC)
            yield Frame(self.cfg.id, self._index, t, at, image)
            self._index += 1
