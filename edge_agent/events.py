"""Rule hits → events with a lifecycle: pending → ``new`` (the alert) → ``update`` … → ``end``.

An episode starts pending at its first hit. It raises one alert (``new``) once it has lasted the rule's
``min_duration_s`` with hits on at least ``min_hit_ratio`` of the frames since; gaps between hits up to
``max_gap_s`` (a hand or knife over the food, a missed detection) do not break it; once it has alerted, gaps
up to ``end_after_s`` do not (a cook working over the food it was alerted for). It ends once the time since
its last hit is longer, and a later hit then starts a new episode. While it goes on, every ``realarm_s`` the
event is ended and a new one (a new alert, ``details.realarm`` = n) starts. A hit continues an episode with
the same key (track ids), or, when a track id changed, one of the same rule and details whose anchor box
overlaps it, or one whose object (the food) lies at the same place and was read as another category: one food
is one violation, whichever wrong category the model reads. An episode may start before the frame of its first
hit: the pipeline passes the ``earlier`` frames (ones the motion gate had skipped) that already showed it, and
the frame where the object behind it ``arrived`` at its place (arrival.py: a glove hides the food it puts down
for a second). From an arrival, ``min_duration_s`` counts from it, and the violation itself must also have
been seen for ``min_seen_s`` (at most ``min_duration_s``) before the alarm. An alarm may fall due while a hand
hides the violation: it comes then if every frame since the last hit was consistent with the violation going
on out of sight (the pipeline asks the rule and the arrival clock) and its sightings were confident (median
score at least ``hidden_alarm_min_score``), else with its next hit.
"""

from __future__ import annotations

import logging
import statistics
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import numpy as np
import supervision as sv

from brightkitchen.contract import DetailValue, Severity
from edge_agent.arrival import Arrival
from edge_agent.config import RuleConfig
from edge_agent.rules.base import Hit
from edge_agent.sources import TIME_SLACK_S as SLACK_S
from edge_agent.sources import Frame
from edge_agent.tracking import iou_matrix

log = logging.getLogger(__name__)
SAME_PLACE_IOU = 0.3


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(iou_matrix(a[None], b[None])[0, 0] > SAME_PLACE_IOU)


def same_place(a: Event | Hit, b: Hit) -> bool:
    """Whether ``b`` shows the episode of ``a`` (same rule assumed): same key; or, in an overlapping place
    (a track id changed), same details or the same object read as another category (held-out 7006-009:
    cooked food on the blue board read as raw meat for 3.4 s, a second alert for one violation)."""
    if a.key == b.key:
        return True
    if not _overlap(a.anchor, b.anchor):
        return False
    return a.details == b.details or (
        a.subject is not None and b.subject is not None and _overlap(a.subject, b.subject)
    )


@dataclass
class BestFrame:
    """The frame where the event's score peaked, with all its detections and the rows behind the event."""

    frame: Frame
    detections: sv.Detections
    indices: tuple[int, ...]
    score: float


@dataclass
class Event:
    """One violation episode (or one re-alarm period of it) on one camera."""

    event_id: uuid.UUID
    rule: str
    rule_name: str
    camera: str
    severity: Severity
    key: tuple[int | str, ...]
    anchor: np.ndarray
    details: dict[str, DetailValue]
    start_t: float
    started_at: datetime
    seen_t: float  # its first sighting; start_t is earlier where the arrival was dated
    last_t: float
    last_at: datetime
    score: float
    best: BestFrame
    hits: int = 1
    frames: int = 1
    alert_t: float | None = None
    ended: bool = False
    seq: int = -1
    media: list = field(default_factory=list)
    arrival: Arrival | None = None  # where its object arrived, when dated
    subject: np.ndarray | None = None  # its object's last box (the food), where the rule names one
    contradicted: bool = False  # a frame since its last hit was not consistent with it going on hidden
    scores: list[float] = field(default_factory=list)  # of its sightings until the alert

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq


@dataclass(frozen=True)
class EventChange:
    phase: Literal["new", "update", "end"]
    event: Event


class EventTracker:
    """Keeps the open episodes of one camera; ``update`` once per processed frame."""

    def __init__(self, camera: str, rules: list[RuleConfig]) -> None:
        self.camera = camera
        self.rules = {rule.name or rule.type: rule for rule in rules}
        self.open: list[Event] = []

    def alarm_due(self, t: float) -> bool:
        """Whether an episode awaiting its alarm has lasted its minimum duration by time ``t``."""
        return any(ev.alert_t is None and self._lasted(ev, t) for ev in self.open)

    def _lasted(self, ev: Event, t: float) -> bool:
        """Whether ``ev``, seen again at time ``t``, has gone on long enough for its alarm."""
        cfg = self.rules[ev.rule_name]
        seen = min(cfg.min_seen_s, cfg.min_duration_s)
        return t - ev.start_t >= cfg.min_duration_s - SLACK_S and t - ev.seen_t >= seen - SLACK_S

    def _alarms(self, ev: Event, t: float, shown: bool) -> bool:
        """Whether pending ``ev`` alarms in the frame at time ``t``: it has lasted long enough with hits on
        enough frames, and the frame shows it (``shown``) or every frame since its last hit was consistent
        with it going on out of sight (a hand over the food when the alarm falls due) and its sightings
        were confident (``hidden_alarm_min_score``)."""
        cfg = self.rules[ev.rule_name]
        if ev.hits / ev.frames < cfg.min_hit_ratio or not self._lasted(ev, t):
            return False
        if shown:
            return True
        floor = cfg.hidden_alarm_min_score
        return floor is not None and not ev.contradicted and statistics.median(ev.scores) >= floor

    def _alive(self, ev: Event, t: float) -> bool:
        """Whether a hit at time ``t`` may still continue ``ev``: its last hit at most ``max_gap_s`` ago, or
        ``end_after_s`` once it has alerted."""
        cfg = self.rules[ev.rule_name]
        gap = cfg.max_gap_s if ev.alert_t is None else max(cfg.max_gap_s, cfg.end_after_s)
        return t - ev.last_t <= gap + SLACK_S

    def starts(self, hit: Hit, t: float) -> bool:
        """Whether ``hit``, seen at time ``t``, would start a new episode (no open one continues with it)."""
        return not any(
            same_place(ev, hit) for ev in self.open if ev.rule_name == hit.rule_name and self._alive(ev, t)
        )

    def update(
        self,
        hits: list[Hit],
        frame: Frame,
        dets: sv.Detections,
        earlier: Mapping[tuple[int | str, ...], Sequence[Frame]] | None = None,
        arrived: Mapping[tuple[int | str, ...], Arrival] | None = None,
        hidden: Callable[[Event], bool] | None = None,
    ) -> list[EventChange]:
        """Fold this frame's hits into the episodes; returns the alerts, re-alarms and ends it causes.

        ``earlier``: for a hit that starts an episode, the consecutive frames just before this one that
        already showed it (oldest first); it was first seen on the first of them. ``arrived``: for such a
        hit, where its object arrived, when that is earlier; the episode starts there.
        ``hidden``: whether this frame, which does not show an episode, is consistent with it going on
        out of sight (a hand over the food); an episode alarms when due in such a frame if every frame
        since its last hit was, and its sightings were confident (``hidden_alarm_min_score``).
        """
        changes: list[EventChange] = []
        # A gap longer than max_gap_s ends the episode even when this frame shows it again: that is a new one.
        for ev in list(self.open):
            if not self._alive(ev, frame.t):
                self.open.remove(ev)
                if ev.alert_t is not None:
                    changes.append(self._end(ev))
                else:
                    log.debug("camera %s: %s episode %s faded before the alarm", self.camera, ev.rule, ev.key)
            else:
                ev.frames += 1
        seen: set[int] = set()
        for hit in hits:
            ev = self._match(hit, seen)
            if ev is None:
                ev = self._start(
                    hit, frame, dets, (earlier or {}).get(hit.key, ()), (arrived or {}).get(hit.key)
                )
                self.open.append(ev)
            else:
                self._continue(ev, hit, frame, dets)
            seen.add(id(ev))
        for ev in self.open:
            if id(ev) not in seen and ev.alert_t is None and not ev.contradicted:
                ev.contradicted = hidden is None or not hidden(ev)
        for ev in list(self.open):
            cfg = self.rules[ev.rule_name]
            if ev.alert_t is None:
                shown = id(ev) in seen
                if self._alarms(ev, frame.t, shown):
                    ev.alert_t = frame.t
                    log.info(
                        "camera %s: %s alert %s (%s) after %.1f s%s, score %.2f",
                        self.camera,
                        ev.rule,
                        ev.event_id,
                        ev.details,
                        frame.t - ev.start_t,
                        "" if shown else f", hidden since {ev.last_t:.2f} s",
                        ev.score,
                    )
                    changes.append(EventChange("new", ev))
            elif frame.t - ev.alert_t >= cfg.realarm_s - SLACK_S:
                changes.append(self._end(ev, at_t=frame.t, at=frame.at))
                self.open.remove(ev)
                again = self._realarm(ev, frame)
                self.open.append(again)
                changes.append(EventChange("new", again))
        return changes

    def finish(self) -> list[EventChange]:
        """End every alerted episode (end of a video, agent shutdown); pending ones are dropped."""
        changes = [self._end(ev) for ev in self.open if ev.alert_t is not None]
        self.open.clear()
        return changes

    def _match(self, hit: Hit, seen: set[int]) -> Event | None:
        same_rule = [ev for ev in self.open if ev.rule_name == hit.rule_name and id(ev) not in seen]
        for ev in same_rule:
            if ev.key == hit.key:
                return ev
        for ev in same_rule:
            if same_place(ev, hit):
                ev.key = hit.key
                return ev
        return None

    def _start(
        self, hit: Hit, frame: Frame, dets: sv.Detections, earlier: Sequence[Frame], arrived: Arrival | None
    ) -> Event:
        cfg = self.rules[hit.rule_name]
        best = BestFrame(frame, dets, hit.indices, hit.score)
        seen = earlier[0] if earlier else frame
        arrival = arrived if arrived is not None and arrived.t < seen.t else None
        first = arrival.frame if arrival is not None else seen
        if first is not seen:
            log.debug(
                "camera %s: %s episode %s first seen at %.2f s, its object arrived at %.2f s",
                self.camera,
                hit.rule,
                hit.key,
                seen.t,
                first.t,
            )
        return Event(
            uuid.uuid4(),
            hit.rule,
            hit.rule_name,
            self.camera,
            cfg.severity,
            hit.key,
            hit.anchor,
            dict(hit.details),
            first.t,
            first.at,
            seen.t,
            frame.t,
            frame.at,
            hit.score,
            best,
            hits=1 + len(earlier),
            frames=1 + len(earlier),
            arrival=arrival,
            subject=hit.subject,
            scores=[hit.score],
        )

    @staticmethod
    def _continue(ev: Event, hit: Hit, frame: Frame, dets: sv.Detections) -> None:
        ev.hits += 1
        ev.contradicted = False
        ev.last_t, ev.last_at, ev.anchor, ev.subject = frame.t, frame.at, hit.anchor, hit.subject
        # The best frame is frozen at the alert: its snapshot is sent then, and every later message of the
        # event must carry the detections of that same frame (the review and the dataset export rely on it).
        if ev.alert_t is None:
            ev.scores.append(hit.score)
        if ev.alert_t is None and hit.score > ev.best.score:
            ev.best = BestFrame(frame, dets, hit.indices, hit.score)
        ev.score = max(ev.score, hit.score)

    def _end(self, ev: Event, at_t: float | None = None, at: datetime | None = None) -> EventChange:
        ev.ended = True
        if at_t is not None and at is not None:
            ev.last_t, ev.last_at = at_t, at
        log.info(
            "camera %s: %s event %s ended after %.1f s",
            self.camera,
            ev.rule,
            ev.event_id,
            ev.last_t - ev.start_t,
        )
        return EventChange("end", ev)

    def _realarm(self, ev: Event, frame: Frame) -> Event:
        count = int(ev.details.get("realarm", 0)) + 1
        log.info(
            "camera %s: %s still going after the re-alarm interval: alert #%d",
            self.camera,
            ev.rule,
            count + 1,
        )
        again = Event(
            uuid.uuid4(),
            ev.rule,
            ev.rule_name,
            ev.camera,
            ev.severity,
            ev.key,
            ev.anchor,
            {**ev.details, "realarm": count},
            frame.t,
            frame.at,
            frame.t,
            frame.t,
            frame.at,
            ev.score,
            ev.best,
            alert_t=frame.t,
        )
        return again
