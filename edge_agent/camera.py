"""One camera's thread: source → pipeline → sink, and the per-camera health that stats report."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from brightkitchen.contract import CameraStats
from edge_agent.config import CameraConfig, EdgeConfig
from edge_agent.detector import DetectorSlot
from edge_agent.pipeline import CameraPipeline, Output
from edge_agent.sources import FrameSource, prefetch

log = logging.getLogger(__name__)


class CameraWorker:
    """Runs a camera until stopped; a failing frame is logged, reported to ``on_error`` and skipped, never
    fatal; ``error`` holds the last failure until a frame succeeds again."""

    def __init__(
        self,
        camera: CameraConfig,
        cfg: EdgeConfig,
        detectors: DetectorSlot,
        sink: Callable[[Output, CameraPipeline], None],
        on_error: Callable[[str], None] = lambda _detail: None,
    ) -> None:
        self.camera = camera
        self.sink = sink
        self.on_error = on_error  # processing failures, for the rollback watchdog
        self.stop_event = threading.Event()
        self.source = FrameSource(camera, self.stop_event)
        self.pipeline = CameraPipeline(camera, cfg, detectors)
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"camera-{camera.id}", daemon=True)
        self._last = (time.monotonic(), 0, 0, 0, 0.0)  # for interval stats

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        log.info("camera %s: reading %s at %.1f fps", self.camera.id, self.camera.source, self.camera.fps)
        for frame in prefetch(self.source.frames(), name=f"read-{self.camera.id}"):
            try:
                outputs = self.pipeline.process(frame)
            except Exception as exc:  # a bad frame or a model error must not kill the camera
                self.error = f"processing failed: {exc}"
                log.exception("camera %s: frame %d failed", self.camera.id, frame.index)
                self.on_error(self.error)
                continue
            self.error = None
            for item in outputs:
                self.sink(item, self.pipeline)
        for item in self.pipeline.finish():
            self.sink(item, self.pipeline)
        log.info("camera %s stopped", self.camera.id)

    def stats(self) -> CameraStats:
        """Health over the interval since the previous call."""
        now = time.monotonic()
        p, gate = self.pipeline, self.pipeline.gate
        then, read0, det0, skip0, ms0 = self._last
        read, det, skipped, ms = (
            self.source.frames_read,
            p.frames_detected,
            gate.frames_skipped,
            p.inference_ms_total,
        )
        self._last = (now, read, det, skipped, ms)
        last = self.source.last_frame_monotonic
        fresh = last is not None and now - last <= self.camera.offline_after_s
        online = self.source.online and fresh
        error = self.source.error or self.error
        if not online and error is None:
            error = f"no frame for {self.camera.offline_after_s:g} s" if last is not None else "no frame yet"
        return CameraStats(
            camera=self.camera.id,
            online=online,
            fps=round((read - read0) / max(now - then, 1e-6), 2),
            inference_ms=round((ms - ms0) / (det - det0), 2) if det > det0 else 0.0,
            frames_processed=det - det0,
            frames_skipped=skipped - skip0,
            last_frame_at=datetime.now(UTC) - timedelta(seconds=now - last) if last is not None else None,
            error=error[:500] if error else None,
        )
