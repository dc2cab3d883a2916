"""Sources: file pacing and thinning, and bad inputs (corrupt file, unreachable RTSP) that never crash."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from edge_agent.config import CameraConfig
from edge_agent.evidence import encode_mp4
from edge_agent.sources import FrameSource, SourceError, prefetch

from .conftest import free_port
from .test_evidence import _image


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s at 10 fps."""
    path = tmp_path_factory.mktemp("clip") / "small.mp4"
    path.write_bytes(encode_mp4([_image(n / 10) for n in range(40)], fps=10))
    return path


def test_file_is_thinned_to_the_camera_fps(small_clip: Path) -> None:
    cam = CameraConfig(id="c", source=str(small_clip), fps=5, realtime=False)
    frames = list(FrameSource(cam).frames())
    assert len(frames) == 20
    assert [round(f.t, 2) for f in frames[:3]] == [0.0, 0.2, 0.4]
    assert frames[-1].at > frames[0].at


def test_realtime_file_is_paced(small_clip: Path) -> None:
    cam = CameraConfig(id="c", source=str(small_clip), fps=5, realtime=True)
    t0 = time.monotonic()
    n = sum(1 for _ in FrameSource(cam).frames())
    assert n == 20 and time.monotonic() - t0 >= 3.5


def test_looped_file_goes_on_with_increasing_time(small_clip: Path) -> None:
    cam = CameraConfig(id="c", source=str(small_clip), fps=5, realtime=False, loop=True)
    stop = threading.Event()
    ts = []
    for f in FrameSource(cam, stop).frames():
        ts.append(f.t)
        if len(ts) == 50:
            stop.set()
    assert len(ts) == 50 and ts == sorted(ts) and ts[-1] > 9


def test_corrupt_file_is_a_clear_error_in_strict_mode(corrupt_video: Path) -> None:
    cam = CameraConfig(id="c", source=str(corrupt_video), realtime=False)
    with pytest.raises(SourceError, match=r"corrupt\.mp4"):
        list(FrameSource(cam, strict=True).frames())


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    cam = CameraConfig(id="c", source=str(tmp_path / "nope.mp4"))
    with pytest.raises(SourceError, match="does not exist"):
        list(FrameSource(cam, strict=True).frames())


@pytest.mark.parametrize("kind", ["corrupt", "rtsp"])
def test_bad_source_in_the_agent_goes_offline_and_retries(kind: str, corrupt_video: Path) -> None:
    url = str(corrupt_video) if kind == "corrupt" else f"rtsp://127.0.0.1:{free_port()}/cam1"
    cam = CameraConfig(
        id="c", source=url, reconnect_min_s=0.2, reconnect_max_s=0.4, open_timeout_s=2, read_timeout_s=2
    )
    stop = threading.Event()
    src = FrameSource(cam, stop)
    frames: list = []
    thread = threading.Thread(target=lambda: frames.extend(src.frames()))
    thread.start()
    time.sleep(2.5)
    stop.set()
    thread.join(10)
    assert not thread.is_alive() and frames == []
    assert not src.online and src.error is not None and "cannot open" in src.error


def test_prefetch_yields_every_frame_in_order(small_clip: Path) -> None:
    cam = CameraConfig(id="c", source=str(small_clip), fps=5)
    direct = [f.index for f in FrameSource(cam, strict=True).frames()]
    ahead = [f.index for f in prefetch(FrameSource(cam, strict=True).frames())]
    assert ahead == direct and len(direct) > 5


def test_prefetch_raises_the_source_error_in_the_consumer(corrupt_video: Path) -> None:
    cam = CameraConfig(id="c", source=str(corrupt_video))
    with pytest.raises(SourceError):
        list(prefetch(FrameSource(cam, strict=True).frames()))


def test_leaving_a_prefetch_early_stops_its_thread_and_closes_the_source() -> None:
    closed = threading.Event()

    def endless():
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    for n in prefetch(endless(), name="endless"):
        if n == 3:
            break
    assert closed.wait(5)
    assert not any(t.name == "endless" for t in threading.enumerate())
