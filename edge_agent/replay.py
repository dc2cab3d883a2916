"""Replay: the same pipeline over a video file, as fast as it goes, without a broker.

ML staff try models on footage with it, and ``training/event_eval.py`` scores event precision, recall and
onset latency with it. Times are seconds from the start of the video.

Example::

    events = replay_video(Path("clip.mp4"), Path("models/bk-detector-0.7.0"))
    print(events[0].as_dict())   # {"event_id": ..., "rule": "board_misuse", "start": 4.2, ...}
"""

from __future__ import annotations

import re
import threading
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from brightkitchen.contract import DetailValue
from edge_agent.config import CameraConfig, EdgeConfig, RuleConfig
from edge_agent.detector import Detector, DetectorSlot
from edge_agent.events import EventChange
from edge_agent.pipeline import CameraPipeline
from edge_agent.sources import FrameSource, check_video_file, prefetch

DEFAULT_RULES = ("board_misuse", "stacked_containers")


@dataclass
class ReplayEvent:
    """One alert found in a video; ``end`` is None when it was still going at the end of the video.

    ``start`` is when the violation began, ``seen`` when the model first showed it: earlier than ``seen``
    where the pipeline dated the food's arrival under a hand (arrival.py). ``seen`` is the model's share of
    the delay when trying models on footage.
    """

    event_id: str
    rule: str
    rule_name: str
    camera: str
    start: float
    seen: float
    alert: float
    end: float | None
    severity: str
    score: float
    details: dict[str, DetailValue] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _camera_id(video: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", video.stem)[:64].lstrip("-_") or "camera"


def replay_config(video: Path, model_dir: Path, camera: str | None = None) -> EdgeConfig:
    """A config for replay when none is given: one camera at 5 fps with both rules at their defaults."""
    return EdgeConfig(
        agent={"id": "replay", "restaurant": "replay"},
        model={"path": model_dir},
        cameras=[
            CameraConfig(
                id=camera or _camera_id(video),
                source=str(video),
                rules=[RuleConfig(type=t) for t in DEFAULT_RULES],
            )
        ],
    )


def replay_video(
    video: Path,
    model_dir: Path | None = None,
    config: EdgeConfig | None = None,
    camera: str | None = None,
    detector: Detector | None = None,
    progress: bool = False,
) -> list[ReplayEvent]:
    """Run ``video`` through the pipeline of ``config``'s first camera (or the default rules).

    ``model_dir`` overrides the config's model; a loaded ``detector`` may be passed to reuse it across
    clips; ``progress`` shows a bar of the video's seconds done. Raises ``SourceError`` for a missing or
    unreadable video.
    """
    video = Path(video)
    duration = check_video_file(video)
    if config is None:
        if model_dir is None:
            raise ValueError("replay needs a model folder or a config that names one")
        config = replay_config(video, model_dir, camera)
    elif model_dir is not None:
        config = config.model_copy(update={"model": config.model.model_copy(update={"path": model_dir})})
    cam = config.cameras[0].model_copy(
        update={"source": str(video), "loop": False, "realtime": False, "id": camera or config.cameras[0].id}
    )
    det = detector or Detector.load(config.model.path, threads=config.model.threads)
    pipeline = CameraPipeline(cam, config, DetectorSlot(det), evidence=False)
    found: dict[str, ReplayEvent] = {}
    source = FrameSource(cam, threading.Event(), strict=True)
    bar = tqdm(total=duration, desc=f"replay {video.name}", unit="s", unit_scale=True, disable=not progress)
    with bar, logging_redirect_tqdm() if progress else nullcontext():  # log lines above the bar
        for frame in prefetch(source.frames(), name="replay-read"):
            for item in pipeline.process(frame):
                _record(found, item)
            bar.update(frame.t - bar.n)  # seconds of video done; the rate is how many times real time
        bar.update((duration or bar.n) - bar.n)  # the last frame's own duration
    for item in pipeline.finish():
        _record(found, item)
    return sorted(found.values(), key=lambda e: (e.start, e.rule))


def _record(found: dict[str, ReplayEvent], item: object) -> None:
    if not isinstance(item, EventChange):
        return
    ev = item.event
    key = str(ev.event_id)
    if item.phase == "new":
        found[key] = ReplayEvent(
            key,
            ev.rule,
            ev.rule_name,
            ev.camera,
            round(ev.start_t, 2),
            round(ev.seen_t, 2),
            round(ev.alert_t if ev.alert_t is not None else ev.start_t, 2),
            None,
            ev.severity,
            round(ev.score, 3),
            dict(ev.details),
        )
    elif key in found:
        found[key].score = round(ev.score, 3)
        if item.phase == "end":
            found[key].end = round(ev.last_t, 2)
