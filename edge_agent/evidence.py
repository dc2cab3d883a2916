"""Evidence for an alert: the best frame as JPEG with boxes and labels drawn, a clean copy for retraining,
and a clip from a ring buffer (``clip_pre_s`` before the onset to ``clip_post_s`` after the alert).

A finished clip is encoded on the recorder's own thread while the camera's thread goes on to the next
frames: a clip takes as long as 10-15 inferences to encode, and libx264 and OpenCV release the GIL, so
on a 2-core box the two overlap instead of adding up. Clips come out of ``push`` in the order they
finished.

Clips are H.264 MP4 (yuv420p, faststart) written with PyAV: OpenCV's wheels cannot encode H.264, and
Chromium does not play their ``mp4v`` (see DESIGN.md).
"""

from __future__ import annotations

import logging
import tempfile
import uuid
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import av
import cv2
import numpy as np
import supervision as sv

from brightkitchen.contract import MAX_CLIP_BYTES, MAX_SNAPSHOT_BYTES, MediaKind
from edge_agent.config import EvidenceSection
from edge_agent.sources import Frame

log = logging.getLogger(__name__)
HIGHLIGHT = (0, 0, 255)  # BGR: boxes behind the event
CONTEXT = (200, 200, 200)  # other detections in the frame


@dataclass(frozen=True)
class Media:
    """One encoded evidence file of an event."""

    event_id: uuid.UUID
    camera: str
    kind: MediaKind
    content_type: str
    data: bytes
    captured_at: datetime


@dataclass(frozen=True)
class ClipUnsent:
    """An event's clip that will not come (no frames, it failed to encode, or it is over the contract's
    size; the log says which), so the pipeline stops waiting for it."""

    event_id: uuid.UUID


def draw_detections(image: np.ndarray, dets: sv.Detections, highlight: tuple[int, ...] = ()) -> np.ndarray:
    """A copy of ``image`` with every box and its label and score; rows in ``highlight`` in red, thick."""
    out = image.copy()
    names = dets.data.get("class_name", [""] * len(dets))
    scale = max(0.4, out.shape[1] / 1600)
    for i in range(len(dets)):
        x1, y1, x2, y2 = (int(v) for v in dets.xyxy[i])
        colour, thick = (HIGHLIGHT, 3) if i in highlight else (CONTEXT, 1)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thick)
        score = f" {dets.confidence[i]:.2f}" if dets.confidence is not None else ""
        text = f"{names[i]}{score}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(th + base, y1)
        cv2.rectangle(out, (x1, top - th - base), (x1 + tw, top), colour, -1)
        cv2.putText(out, text, (x1, top - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """JPEG bytes, lowering quality (then size) until it fits the contract's snapshot limit."""
    while True:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise ValueError("OpenCV could not encode the frame as JPEG")
        if len(buf) <= MAX_SNAPSHOT_BYTES:
            return buf.tobytes()
        if quality > 40:
            quality -= 15
        else:
            image = cv2.resize(
                image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA
            )


# Cheaper motion search than veryfast's (diamond, one subpixel pass, 5 frames of lookahead): a third less
# encoder CPU on a 2-core box for clips of the same size, 0.5 dB lower PSNR (docs/benchmarks.md).
X264_PARAMS = "me=dia:subme=1:rc-lookahead=5"


def encode_mp4(images: list[np.ndarray], fps: float) -> bytes:
    """H.264 MP4 (yuv420p, moov atom first) that browsers play; frames are BGR of one size.

    Written through a temporary file: faststart rewrites the file in a second pass, which an in-memory
    buffer does not allow.
    """
    h, w = images[0].shape[:2]
    w, h = w - w % 2, h - h % 2
    with tempfile.TemporaryDirectory(prefix="bk-clip-") as tmp:
        path = Path(tmp) / "clip.mp4"
        with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=max(1, round(fps)))
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "28", "x264-params": X264_PARAMS}
            for image in images:
                if image.shape[:2] != (h, w):
                    image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[:h, :w]), format="bgr24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        return path.read_bytes()


@dataclass
class _PendingClip:
    event_id: uuid.UUID
    until_t: float
    captured_at: datetime
    images: list[np.ndarray] = field(default_factory=list)


class EvidenceRecorder:
    """Per camera: keeps the ring buffer, renders snapshots, and finishes clips as their post time passes."""

    def __init__(self, cfg: EvidenceSection, camera: str, ring_s: float) -> None:
        self.cfg = cfg
        self.camera = camera
        self.ring_s = ring_s  # seconds of frames kept for clips
        self._ring: deque[tuple[float, np.ndarray]] = deque(maxlen=max(2, int(ring_s * cfg.clip_fps) + 2))
        self._next_t = float("-inf")
        self._pending: list[_PendingClip] = []
        self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"clip-{camera}")
        self._encoding: deque[Future[Media | ClipUnsent]] = deque()
        weakref.finalize(self, self._encoder.shutdown, wait=False)

    def _small(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if w <= self.cfg.clip_max_width:
            return image
        scale = self.cfg.clip_max_width / w
        return cv2.resize(image, (self.cfg.clip_max_width, round(h * scale)), interpolation=cv2.INTER_AREA)

    def push(self, frame: Frame) -> list[Media | ClipUnsent]:
        """Add a frame (thinned to ``clip_fps``); returns the clips done since, oldest first."""
        if frame.t + 1e-6 >= self._next_t:
            self._next_t = max(self._next_t + 1 / self.cfg.clip_fps, frame.t)
            small = self._small(frame.image)
            self._ring.append((frame.t, small))
            for clip in self._pending:
                clip.images.append(small)
        done = [c for c in self._pending if frame.t >= c.until_t]
        self._pending = [c for c in self._pending if frame.t < c.until_t]
        return self._collect(done, wait=False)

    def snapshots(
        self, event_id: uuid.UUID, frame: Frame, dets: sv.Detections, highlight: tuple[int, ...]
    ) -> list[Media]:
        """The annotated and the clean JPEG of the best frame."""
        q = self.cfg.jpeg_quality
        drawn = encode_jpeg(draw_detections(frame.image, dets, highlight), q)
        clean = encode_jpeg(frame.image, q)
        return [
            Media(event_id, self.camera, "snapshot", "image/jpeg", drawn, frame.at),
            Media(event_id, self.camera, "snapshot_clean", "image/jpeg", clean, frame.at),
        ]

    def start_clip(self, event_id: uuid.UUID, onset_t: float, alert_t: float, at: datetime) -> None:
        """Begin a clip from ``clip_pre_s`` before the onset, to finish ``clip_post_s`` after the alert."""
        since = onset_t - self.cfg.clip_pre_s
        clip = _PendingClip(event_id, alert_t + self.cfg.clip_post_s, at)
        clip.images = [img for t, img in self._ring if t >= since]
        self._pending.append(clip)

    def flush(self) -> list[Media | ClipUnsent]:
        """Finish every pending clip with what it has and wait for all encoding (end of video, shutdown)."""
        done, self._pending = self._pending, []
        return self._collect(done, wait=True)

    def _collect(self, finished: list[_PendingClip], wait: bool) -> list[Media | ClipUnsent]:
        """Queue ``finished`` for encoding; return the encoded clips at the head of the queue, in order."""
        self._encoding.extend(self._encoder.submit(self._encode, c) for c in finished)
        out: list[Media | ClipUnsent] = []
        while self._encoding and (wait or self._encoding[0].done()):
            out.append(self._encoding.popleft().result())
        return out

    def _encode(self, clip: _PendingClip) -> Media | ClipUnsent:
        if not clip.images:
            return ClipUnsent(clip.event_id)
        try:
            data = encode_mp4(clip.images, self.cfg.clip_fps)
        except Exception:  # one clip that will not encode must not take the other clips down with it
            log.exception("clip of event %s could not be encoded: not sent", clip.event_id)
            return ClipUnsent(clip.event_id)
        if len(data) > MAX_CLIP_BYTES:
            log.warning(
                "clip of event %s is %d bytes, over the contract's %d: not sent",
                clip.event_id,
                len(data),
                MAX_CLIP_BYTES,
            )
            return ClipUnsent(clip.event_id)
        log.debug("clip of event %s: %d frames, %d bytes", clip.event_id, len(clip.images), len(data))
        return Media(clip.event_id, self.camera, "clip", "video/mp4", data, clip.captured_at)
