"""The edge box's YAML config: agent identity, broker, model, outbox, evidence, motion gate and cameras.

Every field has a default or a description; ``brightkitchen.config.load_config`` turns validation errors
into messages that name the file and the key. See ``configs/edge.yaml`` for a commented example.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from brightkitchen.broker import BrokerSettings
from brightkitchen.config import format_validation_error, load_config
from brightkitchen.contract import ID_PATTERN, Severity
from brightkitchen.model_card import Kind

_HOURS_RE = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
DEFAULT_PALETTE: dict[str, list[str]] = {
    "red": ["raw_meat"],
    "blue": ["raw_seafood"],
    "green": ["vegetable"],
    "yellow": ["cooked_food"],
    "white": [],
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AgentSection(_Strict):
    id: str = Field(pattern=ID_PATTERN, description="this box's id, unique within the restaurant")
    restaurant: str = Field(pattern=ID_PATTERN, description="restaurant id; also the MQTT username")


class MqttSection(BrokerSettings):
    stats_interval_s: float = Field(10.0, gt=0)
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)


LeastScore = Annotated[float, Field(gt=0, lt=1)]


class ModelSection(_Strict):
    path: Path = Field(description="a model folder from models/ (model.onnx, labels.json, card)")
    threads: int = Field(2, ge=1, le=64, description="ONNX Runtime intra-op threads")
    confidence: float = Field(0.35, gt=0, lt=1, description="least score of a detection")
    confidence_by_kind: dict[Kind, LeastScore] = Field(
        default_factory=lambda: {"food": 0.25},
        description="per kind (food, board, container), a least score other than `confidence`: food is "
        "small and often half under a hand (held-out 7003-004: raw seafood read 0.24-0.35 for 3 s between "
        "reads of 0.52-0.62), while a weak container box makes stacks of shadows",
    )
    iou: float = Field(
        0.7,
        gt=0,
        lt=1,
        description="class-wise NMS overlap; a stacked pair's two container boxes overlap 0.5-0.65",
    )
    food_classifier_at: float | None = Field(
        0.6,
        gt=0,
        le=1,
        description="with a model folder that has a food classifier (card.food_classifier), a food box "
        "takes the classifier's category where it gives it at least this probability; null: the "
        'detector\'s category stands (docs/edge.md, "The food classifier")',
    )
    food_classifier_vouch_at: float | None = Field(
        0.9,
        gt=0,
        le=1,
        description="where the food classifier gives a food box's category at least this probability, a "
        "weaker score is raised to tracking.high_confidence, so that small food the detector barely sees "
        "starts a track; null: scores are the detector's",
    )
    download_dir: Path = Field(Path("models"), description="where switch_model unpacks downloaded models")
    rollback_errors: int = Field(
        5, ge=1, description="roll back by itself after this many processing errors right after a switch"
    )
    rollback_window_s: float = Field(120.0, gt=0, description="how long after a switch those errors count")


class TrackingSection(_Strict):
    iou: float = Field(0.3, gt=0, lt=1, description="least box overlap that continues a track")
    high_confidence: float = Field(0.5, gt=0, lt=1, description="below this a box only continues tracks")
    lost_s: float = Field(3.0, gt=0, description="how long a track survives unseen (hands, knives)")
    same_object: dict[str, float] = Field(
        default_factory=lambda: {"food": 0.6, "board": 0.6, "container": 0.85},
        description="per kind, boxes of two classes overlapping this much are one object (the most "
        "confident label stays): food by the share of the smaller box inside the other, boards and "
        "containers by IoU (a stacked pair's boxes overlap 0.5-0.65, a double reading ~0.95)",
    )

    vote_kinds: list[Kind] = Field(
        default_factory=lambda: ["food"],
        description="kinds whose tracks keep one class over time: a confident box of another class of the "
        "kind continues the track, and every box of the track reports the class with the most confidence "
        "seen, a sighting weighing half after vote_half_life_s (a food misread for a moment under a hand "
        "stays what it was)",
    )
    vote_half_life_s: float = Field(1.5, gt=0, description="after this long a sighting weighs half")

    @field_validator("same_object")
    @classmethod
    def _shares(cls, limits: dict[str, float]) -> dict[str, float]:
        for kind, limit in limits.items():
            if not 0 < limit <= 1:
                raise ValueError(
                    f"same_object.{kind} should be an overlap above 0 and at most 1 (got {limit})"
                )
        return limits


class OutboxSection(_Strict):
    path: Path = Path("var/outbox.sqlite")
    max_bytes: int = Field(2 * 1024**3, gt=0, description="disk budget; see README for the eviction order")


class EvidenceSection(_Strict):
    clip_pre_s: float = Field(3.0, ge=0, le=30)
    clip_post_s: float = Field(3.0, ge=0, le=30)
    clip_fps: float = Field(5.0, gt=0, le=30)
    clip_max_width: int = Field(640, ge=64, le=4096, description="clips are scaled down to this width")
    jpeg_quality: int = Field(85, ge=30, le=100)


class MotionSection(_Strict):
    enabled: bool = True
    pixel_threshold: int = Field(18, ge=1, le=255, description="grey-level change that counts as motion")
    min_area_fraction: float = Field(0.002, gt=0, lt=1, description="share of changed pixels that counts")
    forced_interval_s: float = Field(2.0, gt=0, description="run the detector at least this often")
    max_detect_fps: float | None = Field(
        2.0,
        gt=0,
        description="run the detector at most this often while things move, unless an episode's alarm "
        "is due (it lasted min_duration_s); null: no cap",
    )
    width_px: int = Field(160, ge=32, le=1280, description="frames are compared at this width")


class RuleConfig(BaseModel):
    """One rule on one camera. Fields beyond the common ones are the rule type's own parameters."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="rule type, e.g. board_misuse or stacked_containers")
    name: str | None = Field(None, max_length=64)
    roi: list[tuple[float, float]] | None = Field(
        None, description="polygon in normalised frame coordinates (0..1); absent = whole frame"
    )
    min_duration_s: float = Field(3.0, gt=0, description="T: how long a violation lasts before an alarm")
    realarm_s: float = Field(300.0, gt=0, description="re-alarm interval while it goes on")
    severity: Severity = "medium"
    active_hours: list[str] = Field(default_factory=list, description='e.g. ["06:00-14:00", "16:00-22:00"]')
    max_gap_s: float = Field(
        2.5, ge=0, description="gaps between hits (occlusion: a chopping hand) up to this long do not end it"
    )
    end_after_s: float = Field(
        5.0,
        ge=0,
        description="an alerted episode ends once unseen this long (at least max_gap_s): hands over the "
        "food for longer would otherwise make a second alert of the same violation",
    )
    min_hit_ratio: float = Field(
        0.5, gt=0, le=1, description="share of processed frames that must show it before an alarm"
    )
    arrival_lookback_s: float = Field(
        2.5,
        ge=0,
        description="how far back to look for when the object of a new episode arrived at its place (a "
        "glove hides the food it puts down); T then counts from the arrival. 0: from the first sighting",
    )
    min_seen_s: float = Field(
        2.5,
        gt=0,
        description="with T counted from a dated arrival, how long the violation itself must have been "
        "seen before an alarm (at most T)",
    )
    hidden_alarm_min_score: float | None = Field(
        0.7,
        ge=0,
        le=1,
        description="when the alarm falls due in a frame that does not show the violation (a chopping hand "
        "over the food), alarm if nothing seen since contradicts it (board_misuse: no other food on the "
        "board, and the food's place does not look as before it arrived) and the median score of its "
        "sightings is at least this (Frigate's true-positive threshold); null: only on frames that show it",
    )

    @property
    def start_to_alarm_s(self) -> float:
        """About the longest an episode goes from its start to its alarm: T, or, dated from an arrival, the
        lookback and ``min_seen_s``; plus one gap. The evidence ring buffer keeps that much."""
        seen = min(self.min_seen_s, self.min_duration_s)
        return max(self.min_duration_s, self.arrival_lookback_s + seen) + self.max_gap_s

    @field_validator("roi")
    @classmethod
    def _roi(cls, roi: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if roi is None:
            return None
        if len(roi) < 3:
            raise ValueError("an ROI polygon needs at least 3 points")
        if any(not (0 <= x <= 1 and 0 <= y <= 1) for x, y in roi):
            raise ValueError("ROI points are normalised coordinates between 0 and 1")
        return roi

    @field_validator("active_hours")
    @classmethod
    def _hours(cls, spans: list[str]) -> list[str]:
        for span in spans:
            if not _HOURS_RE.match(span):
                raise ValueError(f"active hours {span!r} should look like '06:00-22:00'")
        return spans

    @model_validator(mode="after")
    def _known_type_and_params(self) -> RuleConfig:
        from edge_agent.rules import rule_class  # the registry; imported late, it imports this module

        try:
            rule_class(self.type).Params.model_validate(self.model_extra or {})
        except ValidationError as exc:
            problems = "; ".join(format_validation_error(exc))
            raise ValueError(f"{self.type} parameters: {problems}") from None
        return self

    def params(self) -> BaseModel:
        """The rule type's own parameters (the keys beyond the common ones), validated."""
        from edge_agent.rules import rule_class

        return rule_class(self.type).Params.model_validate(self.model_extra or {})


class CameraConfig(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    source: str = Field(description="video file path, rtsp:// or http(s):// URL, or usb:N")
    fps: float = Field(5.0, gt=0, le=60, description="frames per second to process")
    loop: bool = Field(False, description="video files only: start again at the end")
    realtime: bool = Field(True, description="video files only: pace reading at the file's frame rate")
    reconnect_min_s: float = Field(1.0, gt=0, description="first wait before reopening a lost source")
    reconnect_max_s: float = Field(60.0, gt=0, description="the wait doubles up to this")
    open_timeout_s: float = Field(10.0, gt=0, description="streams: give up opening after this")
    read_timeout_s: float = Field(10.0, gt=0, description="streams: a read that blocks this long fails")
    offline_after_s: float = Field(15.0, gt=0, description="no frame for this long: reported offline")
    rules: list[RuleConfig] = Field(default_factory=list)

    @field_validator("rules")
    @classmethod
    def _unique_rule_names(cls, rules: list[RuleConfig]) -> list[RuleConfig]:
        # Episodes and their timing are looked up by rule name (its type when unnamed).
        seen: set[str] = set()
        for rule in rules:
            name = rule.name or rule.type
            if name in seen:
                raise ValueError(f"two rules are named {name!r}; give each rule of a type its own name")
            seen.add(name)
        return rules


class EdgeConfig(_Strict):
    agent: AgentSection
    mqtt: MqttSection = Field(default_factory=MqttSection)
    model: ModelSection
    outbox: OutboxSection = Field(default_factory=OutboxSection)
    evidence: EvidenceSection = Field(default_factory=EvidenceSection)
    motion: MotionSection = Field(default_factory=MotionSection)
    tracking: TrackingSection = Field(default_factory=TrackingSection)
    palette: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_PALETTE.items()},
        description="board colour → food categories allowed on it",
    )
    cameras: list[CameraConfig] = Field(min_length=1)

    @field_validator("cameras")
    @classmethod
    def _unique_cameras(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        # A field validator, so that the error names `cameras` rather than the top level.
        seen: set[str] = set()
        for cam in cameras:
            if cam.id in seen:
                raise ValueError(f"camera id {cam.id!r} is used twice")
            seen.add(cam.id)
        return cameras


def load_edge_config(path: Path | str) -> EdgeConfig:
    """Load and validate an edge config file; relative paths in it stay relative to the working directory."""
    return load_config(path, EdgeConfig)
