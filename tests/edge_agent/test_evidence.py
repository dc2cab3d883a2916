"""Evidence: annotated and clean JPEGs, and an H.264 MP4 clip (probed with PyAV) from the ring buffer."""

from __future__ import annotations

import io
import threading
import uuid

import av
import cv2
import numpy as np
import pytest

from edge_agent import evidence
from edge_agent.config import EvidenceSection
from edge_agent.evidence import EvidenceRecorder, draw_detections, encode_mp4

from .helpers import dets, frame


def _image(t: float) -> np.ndarray:
    img = np.full((360, 640, 3), 80, np.uint8)
    x = int(50 + 40 * t)
    img[100:200, x : x + 80] = (0, 0, 220)
    return img


def _probe(data: bytes) -> tuple[str, str, int, int, int]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return container.format.name, stream.codec_context.name, stream.width, stream.height, frames


def test_mp4_is_h264_yuv420p() -> None:
    data = encode_mp4([_image(t / 5) for t in range(10)], fps=5)
    fmt, codec, w, h, n = _probe(data)
    assert "mp4" in fmt and codec == "h264" and (w, h) == (640, 360) and n == 10
    with av.open(io.BytesIO(data)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat"), "faststart: moov before mdat"


def test_clip_covers_pre_and_post_seconds() -> None:
    rec = EvidenceRecorder(EvidenceSection(clip_pre_s=2, clip_post_s=3, clip_fps=5), "cam1", ring_s=10)
    event_id = uuid.uuid4()
    clips = []
    for n in range(0, 100):  # 10 fps source, thinned to 5 fps
        t = n / 10
        f = frame(t, image=_image(t))
        if t == 5.0:
            rec.start_clip(event_id, onset_t=3.0, alert_t=5.0, at=f.at)
        clips += rec.push(f)
    clips += rec.flush()
    (clip,) = clips
    assert clip.kind == "clip" and clip.content_type == "video/mp4" and clip.event_id == event_id
    _, codec, _, _, n = _probe(clip.data)
    # From 1.0 s (onset − pre) to 8.0 s (alert + post) inclusive, at 5 fps.
    assert codec == "h264" and n == 36


def _two_clips() -> tuple[EvidenceRecorder, uuid.UUID, uuid.UUID, list]:
    """A recorder through 2 s of frames with two short clips started at 0 and 0.2 s; what push returned."""
    rec = EvidenceRecorder(EvidenceSection(clip_pre_s=0, clip_post_s=0.4, clip_fps=5), "cam1", ring_s=5)
    first, second = uuid.uuid4(), uuid.uuid4()
    out = []
    for n in range(10):
        f = frame(n / 5, image=_image(n / 5))
        if n in (0, 1):
            rec.start_clip(first if n == 0 else second, f.t, f.t, f.at)
        out += rec.push(f)
    return rec, first, second, out


def test_clips_encode_off_the_camera_thread_and_come_out_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The camera's thread goes on while a clip encodes; finished clips still come out oldest first."""
    release = threading.Event()
    threads: list[str] = []
    real_encode = evidence.encode_mp4

    def slow_encode(images: list[np.ndarray], fps: float) -> bytes:
        threads.append(threading.current_thread().name)
        release.wait(timeout=10)
        return real_encode(images, fps)

    monkeypatch.setattr(evidence, "encode_mp4", slow_encode)
    rec, first, second, out = _two_clips()
    assert out == [], "push does not wait for the encoder"
    assert threads and all(name.startswith("clip-cam1") for name in threads)
    release.set()
    out += rec.flush()
    assert [m.event_id for m in out] == [first, second]


def test_a_clip_that_fails_to_encode_is_logged_and_the_next_still_comes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_encode = evidence.encode_mp4
    calls = []

    def first_fails(images: list[np.ndarray], fps: float) -> bytes:
        calls.append(len(images))
        if len(calls) == 1:
            raise av.error.ValueError(22, "Invalid argument")
        return real_encode(images, fps)

    monkeypatch.setattr(evidence, "encode_mp4", first_fails)
    rec, first, second, out = _two_clips()
    out += rec.flush()
    assert [(type(m).__name__, m.event_id) for m in out] == [("ClipUnsent", first), ("Media", second)]
    assert f"clip of event {first} could not be encoded" in caplog.text


def test_clip_frames_are_scaled_down_to_max_width() -> None:
    rec = EvidenceRecorder(EvidenceSection(clip_max_width=320, clip_post_s=0.5), "cam1", ring_s=5)
    big = np.zeros((720, 1280, 3), np.uint8)
    rec.start_clip(uuid.uuid4(), 0.0, 0.0, frame(0).at)
    out = [m for n in range(5) for m in rec.push(frame(n / 5, image=big))] + rec.flush()
    assert _probe(out[0].data)[2:4] == (320, 180)


def test_snapshots_drawn_and_clean() -> None:
    rec = EvidenceRecorder(EvidenceSection(), "cam1", ring_s=5)
    img = _image(0)
    d = dets(("board_blue", 40, 80, 300, 250, 0.91), ("raw_meat", 60, 100, 120, 180, 0.77))
    drawn, clean = rec.snapshots(uuid.uuid4(), frame(0, image=img), d, (0, 1))
    assert (drawn.kind, clean.kind) == ("snapshot", "snapshot_clean")
    a = cv2.imdecode(np.frombuffer(drawn.data, np.uint8), cv2.IMREAD_COLOR)
    b = cv2.imdecode(np.frombuffer(clean.data, np.uint8), cv2.IMREAD_COLOR)
    assert a.shape == b.shape == img.shape
    assert np.abs(b.astype(int) - img).mean() < 3, "the clean copy is the frame itself"
    assert np.abs(a.astype(int) - img).mean() > np.abs(b.astype(int) - img).mean() + 1, "boxes are drawn"


def test_draw_detections_leaves_the_input_alone() -> None:
    img = _image(0)
    before = img.copy()
    draw_detections(img, dets(("container", 10, 10, 100, 100)), (0,))
    assert np.array_equal(img, before)
