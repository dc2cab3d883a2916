"""One camera's pipeline: frame → motion gate → detector → tracker → rules → events → evidence.

``process(frame)`` returns what happened, in order: ``EventChange`` s (with their media refs attached) and
the ``Media`` they announce. The agent turns these into contract messages for the outbox; replay reads
the events directly. When the motion gate skips a frame, the last detections stand for it: nothing moved.

The gate's rate cap (``motion.max_detect_fps``) would delay the first sighting of a violation by up to
one cap interval. So when a detection shows a hit that starts an episode, the frames the gate skipped just
before it are detected too, newest first, and the episode starts at the earliest of them that still shows
it: the cap saves inference on the frames where nothing begins and costs no onset time. Where the rule
names the object whose arrival began the violation (the food on the board), the last frames also date
that arrival, which a hand often hides for a second (arrival.py).
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
from collections import deque
from collections.abc import Callable

import numpy as np
import supervision as sv

from brightkitchen.contract import MediaRef
from edge_agent.arrival import Arrival, ArrivalClock
from edge_agent.config import CameraConfig, EdgeConfig
from edge_agent.detector import Detector, DetectorSlot, class_thresholds
from edge_agent.events import Event, EventChange, EventTracker, same_place
from edge_agent.evidence import ClipUnsent, EvidenceRecorder, Media
from edge_agent.motion import MotionGate
from edge_agent.rules import build_rules
from edge_agent.rules.base import Hit, LabelMap, Rule
from edge_agent.sources import Frame
from edge_agent.tracking import Tracker

log = logging.getLogger(__name__)
Output = EventChange | Media


def media_ref(media: Media) -> MediaRef:
    return MediaRef(
        kind=media.kind,
        content_type=media.content_type,  # type: ignore[arg-type]
        sha256=hashlib.sha256(media.data).hexdigest(),
        size_bytes=len(media.data),
    )


class CameraPipeline:
    """Stateful per camera; not thread-safe (one thread per camera)."""

    def __init__(
        self, camera: CameraConfig, cfg: EdgeConfig, detectors: DetectorSlot, evidence: bool = True
    ) -> None:
        self.camera = camera
        self.cfg = cfg
        self.detectors = detectors
        self.gate = MotionGate(cfg.motion)
        self.events = EventTracker(camera.id, camera.rules)
        longest = max((r.start_to_alarm_s for r in camera.rules), default=0.0)
        self.evidence = (
            EvidenceRecorder(cfg.evidence, camera.id, cfg.evidence.clip_pre_s + longest + 1)
            if evidence
            else None
        )
        self.frames_seen = 0
        self.frames_detected = 0
        self.inference_ms_total = 0.0
        self._detector: Detector | None = None
        self._rules: dict[str, Rule] = {}  # by name
        self._tracker = Tracker()
        self._floors: np.ndarray | float = cfg.model.confidence  # least score per class of the model in use
        self._dets = sv.Detections.empty()
        self._awaiting_clip: dict[str, Event] = {}
        cap = cfg.motion.max_detect_fps
        self._skipped: deque[Frame] = deque(maxlen=max(1, math.ceil(camera.fps / cap) - 1) if cap else 1)
        self._lookback = {rule.name or rule.type: rule.arrival_lookback_s for rule in camera.rules}
        lookback = max(self._lookback.values(), default=0.0)
        self._arrivals = ArrivalClock(lookback) if lookback > 0 else None

    def _use(self, detector: Detector) -> None:
        """A new (or switched) model: rules read its label map, tracks start afresh."""
        if self._detector is not None:
            log.info("camera %s now uses model %s", self.camera.id, detector.card.ref)
        self._detector = detector
        self._rules = {
            rule.name: rule
            for rule in build_rules(self.camera.rules, LabelMap(detector.labels), self.cfg.palette)
        }
        self._tracker = Tracker.from_config(self.cfg.tracking, detector.labels)
        self._floors = class_thresholds(
            detector.labels, self.cfg.model.confidence, self.cfg.model.confidence_by_kind
        )
        self._dets = sv.Detections.empty()

    @property
    def detector(self) -> Detector:
        return self._detector or self.detectors.current

    def process(self, frame: Frame) -> list[Output]:
        """Run one frame through every stage; returns event changes and media, in the order to send them."""
        detector = self.detectors.current
        if detector is not self._detector:
            self._use(detector)
        self.frames_seen += 1
        earlier: dict[tuple[int | str, ...], list[Frame]] = {}
        arrived: dict[tuple[int | str, ...], Arrival] = {}
        if self.gate.check(frame.image, frame.t, alarm_due=self.events.alarm_due(frame.t)):
            self._dets = self._detect(self._tracker, frame, detector)
            hits = self._hits(self._dets, frame)
            fresh = [hit for hit in hits if self.events.starts(hit, frame.t)]
            if fresh and self._skipped:
                earlier = self._backfill(fresh, detector)
            arrived = self._arrived(fresh, earlier, frame)
            self._skipped.clear()
        else:
            self._skipped.append(frame)
            hits = self._hits(self._dets, frame)
        if self._arrivals is not None:
            self._arrivals.push(frame)
        out: list[Output] = []
        for change in self.events.update(hits, frame, self._dets, earlier, arrived, self._hidden(frame)):
            out.extend(self._with_evidence(change))
        if self.evidence is not None:
            out.extend(self._clips(self.evidence.push(frame)))
        return out

    def _detect(self, tracker: Tracker, frame: Frame, detector: Detector) -> sv.Detections:
        raw = detector.detect(frame.image, confidence=self._floors, iou=self.cfg.model.iou)
        model = self.cfg.model
        raw = detector.reread_food(
            frame.image,
            raw,
            model.food_classifier_at,
            model.food_classifier_vouch_at,
            self.cfg.tracking.high_confidence,
        )
        self.frames_detected += 1
        self.inference_ms_total += detector.last_inference_ms + detector.last_reread_ms
        return tracker.update(raw, frame.t)

    def _hits(self, dets: sv.Detections, frame: Frame) -> list[Hit]:
        return [hit for rule in self._rules.values() for hit in rule.evaluate(dets, frame.size, frame.at)]

    def _backfill(self, fresh: list[Hit], detector: Detector) -> dict[tuple[int | str, ...], list[Frame]]:
        """The skipped frames (newest first, while any still shows one) that already showed ``fresh`` hits.

        They are tracked on a copy of the tracker, which already knows this frame's objects: the same
        food on the same board keeps its track id, so its hit has the same key.
        """
        tracker = copy.deepcopy(self._tracker)
        runs: dict[tuple[int | str, ...], list[Frame]] = {hit.key: [] for hit in fresh}
        going = {hit.key: hit for hit in fresh}
        for frame in reversed(self._skipped):
            hits = self._hits(self._detect(tracker, frame, detector), frame)
            for key, hit in list(going.items()):
                if any(h.rule_name == hit.rule_name and same_place(hit, h) for h in hits):
                    runs[key].insert(0, frame)
                else:
                    del going[key]
            if not going:
                break
        earlier = {key: frames for key, frames in runs.items() if frames}
        for key, frames in earlier.items():
            log.debug(
                "camera %s: episode %s began at %.2f s, %d skipped frame(s) earlier",
                self.camera.id,
                key,
                frames[0].t,
                len(frames),
            )
        return earlier

    def _arrived(
        self, fresh: list[Hit], earlier: dict[tuple[int | str, ...], list[Frame]], frame: Frame
    ) -> dict[tuple[int | str, ...], Arrival]:
        """For fresh hits that name the object behind them: where and when it arrived, where dated."""
        if self._arrivals is None:
            return {}
        arrived: dict[tuple[int | str, ...], Arrival] = {}
        for hit in fresh:
            lookback = self._lookback[hit.rule_name]
            if hit.subject is None or not lookback:
                continue
            seen_t = earlier[hit.key][0].t if hit.key in earlier else frame.t
            when = self._arrivals.arrival(hit.subject, seen_t, frame.size, lookback)
            if when is not None:
                arrived[hit.key] = when
        return arrived

    def _hidden(self, frame: Frame) -> Callable[[Event], bool]:
        """Whether ``frame`` is consistent with an episode it does not show going on hidden: its object's
        place still differs from how it looked before the object arrived (so an episode needs a dated
        arrival), and its rule finds nothing there that contradicts it."""

        def hidden(ev: Event) -> bool:
            if ev.arrival is None or self._arrivals is None or not self._arrivals.still_there(ev.arrival):
                return False
            return self._rules[ev.rule_name].still_hidden(
                self._dets, ev.anchor, ev.details, frame.size, frame.at
            )

        return hidden

    def finish(self) -> list[Output]:
        """End open events and finish pending clips (end of a video, shutdown)."""
        out: list[Output] = []
        for change in self.events.finish():
            out.extend(self._with_evidence(change))
        if self.evidence is not None:
            out.extend(self._clips(self.evidence.flush()))
        return out

    def _with_evidence(self, change: EventChange) -> list[Output]:
        ev = change.event
        if change.phase != "new" or self.evidence is None:
            return [change]
        best = ev.best
        snaps = self.evidence.snapshots(ev.event_id, best.frame, best.detections, best.indices)
        ev.media.extend(media_ref(m) for m in snaps)
        self.evidence.start_clip(ev.event_id, ev.start_t, ev.alert_t or ev.start_t, best.frame.at)
        self._awaiting_clip[str(ev.event_id)] = ev
        return [change, *snaps]

    def _clips(self, clips: list[Media | ClipUnsent]) -> list[Output]:
        out: list[Output] = []
        for clip in clips:
            ev = self._awaiting_clip.pop(str(clip.event_id), None)
            if ev is None or isinstance(clip, ClipUnsent):
                continue
            ev.media.append(media_ref(clip))
            # An event that already ended is re-sent as "end" so that its highest seq keeps that phase.
            out += [EventChange("end" if ev.ended else "update", ev), clip]
        return out
