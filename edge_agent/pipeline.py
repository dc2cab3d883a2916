"""One camera's pipeline: frame → motion gate → detector → tracker → rules → events → evidence.

``process(frame)`` returns what happened, in order: ``EventChange`` s (with their media refs attached) and
the ``Media`` they announce. The agent turns these into contract messages for the outbox; replay reads
the events directly. When the motion gate skips a frame, the last detections stand for it: nothing moved.
"""

from __future__ import annotations

import hashlib
import logging

import supervision as sv

from brightkitchen.contract import MediaRef
from edge_agent.config import CameraConfig, EdgeConfig
from edge_agent.detector import Detector, DetectorSlot
from edge_agent.events import Event, EventChange, EventTracker
from edge_agent.evidence import ClipUnsent, EvidenceRecorder, Media
from edge_agent.motion import MotionGate
from edge_agent.rules import build_rules
from edge_agent.rules.base import LabelMap, Rule
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
        longest = max((r.min_duration_s + r.max_gap_s for r in camera.rules), default=0.0)
        self.evidence = (
            EvidenceRecorder(cfg.evidence, camera.id, cfg.evidence.clip_pre_s + longest + 1)
            if evidence
            else None
        )
        self.frames_seen = 0
        self.frames_detected = 0
        self.inference_ms_total = 0.0
        self._detector: Detector | None = None
        self._rules: list[Rule] = []
        self._tracker = Tracker()
        self._dets = sv.Detections.empty()
        self._awaiting_clip: dict[str, Event] = {}

    def _use(self, detector: Detector) -> None:
        """A new (or switched) model: rules read its label map, tracks start afresh."""
        if self._detector is not None:
            log.info("camera %s now uses model %s", self.camera.id, detector.card.ref)
        self._detector = detector
        self._rules = build_rules(self.camera.rules, LabelMap(detector.labels), self.cfg.palette)
        self._tracker = Tracker.from_config(self.cfg.tracking, detector.labels)
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
        if self.gate.check(frame.image, frame.t, pending=self.events.pending):
            raw = detector.detect(frame.image, confidence=self.cfg.model.confidence, iou=self.cfg.model.iou)
            self.frames_detected += 1
            self.inference_ms_total += detector.last_inference_ms
            self._dets = self._tracker.update(raw, frame.t)
        hits = [hit for rule in self._rules for hit in rule.evaluate(self._dets, frame.size, frame.at)]
        out: list[Output] = []
        for change in self.events.update(hits, frame, self._dets):
            out.extend(self._with_evidence(change))
        if self.evidence is not None:
            out.extend(self._clips(self.evidence.push(frame)))
        return out

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
