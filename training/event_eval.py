"""Event-level evaluation: replay clips through the edge pipeline and match alerts to ground truth.

A ground-truth event is found when an alert of the same rule overlaps it in time (one-to-one, earliest
alert first); every other alert is a false positive, including a second alert for one episode. Onset
latency is the time the alert was raised (``alert``; ``start`` where absent) minus the true start; the
edge target is at most T + 1 s.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

GRACE_S = 2.0  # an alert may start up to this long after the true end (evidence of the last seconds)


@dataclass(frozen=True)
class ClipResult:
    clip: str
    gt_events: int
    alerts: int
    matched: int
    latencies_s: list[float]


def match_events(alerts: list[dict[str, Any]], truth: list[dict[str, Any]]) -> tuple[int, list[float]]:
    """Greedy one-to-one matching by rule and time overlap; returns (matched count, onset latencies)."""
    used: set[int] = set()
    latencies: list[float] = []
    for gt in sorted(truth, key=lambda e: e["start"]):
        for i, alert in sorted(enumerate(alerts), key=lambda x: x[1]["start"]):
            if i in used or alert["rule"] != gt["rule"]:
                continue
            alert_end = alert["end"] if alert.get("end") is not None else float("inf")
            if alert["start"] <= gt["end"] + GRACE_S and alert_end >= gt["start"]:
                used.add(i)
                latencies.append(round(alert.get("alert", alert["start"]) - gt["start"], 2))
                break
    return len(used), latencies


def evaluate_clips(model_dir: Path, clips: Path) -> dict[str, Any]:
    """Replay every ``*.mp4`` in ``clips`` that has a ground-truth JSON beside it; summary as a dict."""
    from edge_agent.replay import replay_video

    results: list[ClipResult] = []
    videos = sorted(p for p in clips.glob("*.mp4") if p.with_suffix(".json").exists())
    if not videos:
        raise FileNotFoundError(f"no clips with ground-truth JSON in {clips}")
    for video in tqdm(videos, desc="replay", unit="clip"):
        truth = json.loads(video.with_suffix(".json").read_text())["events"]
        alerts = [e.as_dict() if hasattr(e, "as_dict") else dict(e) for e in replay_video(video, model_dir)]
        matched, lat = match_events(alerts, truth)
        results.append(ClipResult(video.name, len(truth), len(alerts), matched, lat))
    return summarise(results)


def summarise(results: list[ClipResult]) -> dict[str, Any]:
    gt = sum(r.gt_events for r in results)
    alerts = sum(r.alerts for r in results)
    matched = sum(r.matched for r in results)
    latencies = [x for r in results for x in r.latencies_s]
    return {
        "clips": len(results),
        "gt_events": gt,
        "alerts": alerts,
        "matched": matched,
        "precision": matched / alerts if alerts else 1.0,
        "recall": matched / gt if gt else 1.0,
        "median_onset_latency_s": statistics.median(latencies) if latencies else None,
        "max_onset_latency_s": max(latencies) if latencies else None,
        "per_clip": [r.__dict__ for r in results],
    }


def format_event_summary(summary: dict[str, Any]) -> str:
    return (
        f"events: {summary['clips']} clips, {summary['gt_events']} true events, {summary['alerts']} alerts, "
        f"precision {summary['precision']:.3f}, recall {summary['recall']:.3f}, "
        f"onset latency median {summary['median_onset_latency_s']} s / max {summary['max_onset_latency_s']} s"
    )
