"""A candidate model against the baseline on one fixed benchmark, and the verdict: promote or reject.

Both models go through the same evaluation as ``train eval`` (mAP per class through the edge's ONNX
Runtime path; with clips, event precision, recall and on-time recall through the edge pipeline). The
candidate is promoted only if, on every class with instances in the benchmark, neither mAP50 nor mAP50-95
is lower than the baseline's by more than ``tolerance`` (absolute), and, with clips, no event metric.

``report.json`` (read by the dashboard's model registry)::

    {"verdict": "promote" | "reject", "tolerance": 0.02, "reasons": [...], "checks": [...],
     "candidate": {model, card, images, per_class, events?}, "baseline": {...}, "data": ..., "clips": ...}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_agent.config import EdgeConfig

CLASS_METRICS = ("map50", "map50_95")
EVENT_METRICS = ("precision", "recall", "on_time_recall")  # on time: within T + 1 s of the onset


@dataclass(frozen=True)
class Check:
    """One metric of one class (or of the events) compared."""

    scope: str
    metric: str
    baseline: float
    candidate: float
    tolerance: float

    @property
    def delta(self) -> float:
        return self.candidate - self.baseline

    @property
    def ok(self) -> bool:
        return self.delta >= -self.tolerance - 1e-12

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta, "ok": self.ok}


@dataclass(frozen=True)
class Verdict:
    promote: bool
    checks: list[Check]
    reasons: list[str]


def evaluate_model(
    model: Path, data: Path, clips: Path | None, threads: int = 2, edge_config: EdgeConfig | None = None
) -> dict[str, Any]:
    """``train eval``'s metrics of one model folder: per class on ``data``, events on ``clips`` (replayed
    with ``edge_config``'s first camera, or ``edge replay``'s defaults)."""
    from brightkitchen.model_card import ModelCard
    from edge_agent.detector import Detector
    from training.evaluate import dataset_classes, dataset_images, evaluate_detections

    images = dataset_images(data, "all")
    if not images:
        raise FileNotFoundError(f"no images under {data}/images")
    card = ModelCard.read(model)
    rows = evaluate_detections(Detector.load(model, threads=threads), images, classes=dataset_classes(data))
    result: dict[str, Any] = {
        "model": str(model),
        "card": {"name": card.name, "version": card.version, "sha256": card.sha256},
        "images": len(images),
        "per_class": [asdict(r) for r in rows],
    }
    if clips is not None:
        from training.event_eval import evaluate_clips

        result["events"] = evaluate_clips(model, clips, edge_config)
    return result


def judge(candidate: dict[str, Any], baseline: dict[str, Any], tolerance: float) -> Verdict:
    """Promote only if no class (nor event metric) is worse than the baseline by more than ``tolerance``."""
    cand = {r["name"]: r for r in candidate["per_class"]}
    checks: list[Check] = []
    reasons: list[str] = []
    for base in baseline["per_class"]:
        if not base["instances"]:
            continue
        row = cand.get(base["name"])
        if row is None:
            reasons.append(f"class {base['name']} is missing from the candidate")
            continue
        checks += [Check(base["name"], m, base[m], row[m], tolerance) for m in CLASS_METRICS]
    if not checks and not reasons:
        reasons.append("the benchmark has no labelled instances: nothing to compare")
    if "events" in baseline and "events" in candidate:
        checks += [
            Check("events", m, baseline["events"][m], candidate["events"][m], tolerance)
            for m in EVENT_METRICS
            if m in baseline["events"] and m in candidate["events"]
        ]
    reasons += [
        f"{c.scope} {c.metric}: {c.candidate:.3f} vs {c.baseline:.3f} ({c.delta:+.3f}, tolerance {tolerance})"
        for c in checks
        if not c.ok
    ]
    return Verdict(not reasons, checks, reasons)


def chart(candidate: dict[str, Any], baseline: dict[str, Any], path: Path) -> None:
    """Bars per class, baseline beside candidate, for mAP50 and mAP50-95."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r["name"] for r in baseline["per_class"]]
    cand = {r["name"]: r for r in candidate["per_class"]}
    x = np.arange(len(names))
    fig, axes = plt.subplots(2, 1, figsize=(max(8, len(names) * 0.9), 7), sharex=True)
    for ax, metric, title in zip(axes, CLASS_METRICS, ("mAP50", "mAP50-95"), strict=True):
        base = [r[metric] for r in baseline["per_class"]]
        new = [cand[n][metric] if n in cand else 0.0 for n in names]
        ax.bar(x - 0.2, base, 0.4, label=f"baseline {baseline['card']['version']}", color="#94a3b8")
        ax.bar(x + 0.2, new, 0.4, label=f"candidate {candidate['card']['version']}", color="#2563eb")
        ax.set_ylabel(title)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xticks(x, names, rotation=30, ha="right")
    fig.suptitle("Per-class detection metrics on the benchmark")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.95), ncol=2, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.91))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _number(value: float | None, sign: str = "") -> str:
    """Counts as they are, rates and seconds to 3 decimals, absent as a dash."""
    if value is None:
        return "–"
    return f"{value:{sign}d}" if isinstance(value, int) else f"{value:{sign}.3f}"


def _markdown(report: dict[str, Any]) -> str:
    c, b = report["candidate"], report["baseline"]
    lines = [
        f"# Model comparison: {c['card']['name']} {c['card']['version']} vs {b['card']['version']}",
        "",
        f"**Verdict: {report['verdict'].upper()}** (tolerance {report['tolerance']} absolute, per class and "
        "per event metric)",
        "",
        f"- candidate: `{c['model']}` (sha256 `{c['card']['sha256'][:16]}`)",
        f"- baseline: `{b['model']}` (sha256 `{b['card']['sha256'][:16]}`)",
        f"- benchmark: `{report['data']}`, {b['images']} images"
        + (f"; clips `{report['clips']}`" if report["clips"] else ""),
    ]
    if report["reasons"]:
        lines += ["", "Why not:", "", *[f"- {r}" for r in report["reasons"]]]
    lines += [
        "",
        "## Per class",
        "",
        "![per-class metrics](chart.png)",
        "",
        "| class | instances | mAP50 base | mAP50 cand | Δ | mAP50-95 base | mAP50-95 cand | Δ | ok |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    checks = {(k["scope"], k["metric"]): k for k in report["checks"]}
    for row in b["per_class"]:
        m50, m95 = checks.get((row["name"], "map50")), checks.get((row["name"], "map50_95"))
        if m50 is None or m95 is None:
            lines.append(f"| {row['name']} | {row['instances']} | – | – | – | – | – | – | not judged |")
            continue
        ok = "yes" if m50["ok"] and m95["ok"] else "**no**"
        lines.append(
            f"| {row['name']} | {row['instances']} | {m50['baseline']:.3f} | {m50['candidate']:.3f} | "
            f"{m50['delta']:+.3f} | {m95['baseline']:.3f} | {m95['candidate']:.3f} | "
            f"{m95['delta']:+.3f} | {ok} |"
        )
    if "events" in b and "events" in c:
        lines += [
            "",
            "## Events (clips replayed through the edge pipeline)",
            "",
            "| metric | baseline | candidate | Δ |",
            "|---|---:|---:|---:|",
        ]
        shown = ("false_alerts", "late", "late_from_visible", "missed_visible", "median_onset_latency_s")
        for m in (*EVENT_METRICS, *shown):
            bv, cv = b["events"].get(m), c["events"].get(m)
            delta = _number(cv - bv, "+") if bv is not None and cv is not None else "–"
            lines.append(f"| {m} | {_number(bv)} | {_number(cv)} | {delta} |")
    return "\n".join(lines) + "\n"


def write_report(
    out: Path,
    candidate: dict[str, Any],
    baseline: dict[str, Any],
    verdict: Verdict,
    tolerance: float,
    data: Path,
    clips: Path | None,
) -> dict[str, Any]:
    """``report.json``, ``report.md`` and ``chart.png`` in ``out``; returns the report."""
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "verdict": "promote" if verdict.promote else "reject",
        "tolerance": tolerance,
        "reasons": verdict.reasons,
        "checks": [c.as_dict() for c in verdict.checks],
        "data": str(data),
        "clips": str(clips) if clips else None,
        "candidate": candidate,
        "baseline": baseline,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    chart(candidate, baseline, out / "chart.png")
    (out / "report.md").write_text(_markdown(report))
    return report
