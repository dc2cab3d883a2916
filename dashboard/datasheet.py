"""The datasheet of an exported dataset: counts per class, restaurant, verdict and split, and its caveats."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

from brightkitchen import __version__
from brightkitchen.datasets import SPLITS, Sample
from dashboard.models import now_utc
from training.classes import CLASS_NAMES

if TYPE_CHECKING:
    from dashboard.dataset_export import ExportOptions


def _by_split(pairs: list[tuple[str, str]]) -> dict[str, dict[str, int]]:
    """(key, split) pairs → {key: {train, val, total}}, keys sorted."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for key, split in pairs:
        counts[key][split] += 1
    return {k: {**{s: counts[k][s] for s in SPLITS}, "total": counts[k].total()} for k in sorted(counts)}


def datasheet(samples: list[Sample], skipped: dict[str, int], opts: ExportOptions) -> dict[str, Any]:
    """Everything counted; also lists every image with its event, group and split (for re-imports)."""
    per_class = _by_split([(lb.name, s.split) for s in samples for lb in s.labels])
    return {
        "created_at": now_utc().isoformat(timespec="seconds"),
        "software_version": __version__,
        "filters": {
            "since": opts.since.isoformat() if opts.since else None,
            "until": opts.until.isoformat() if opts.until else None,
            "restaurants": list(opts.restaurants),
        },
        "split": {"group_by": opts.group_by, "val_fraction": opts.val_fraction, "timezone": opts.timezone},
        "images": {s: sum(x.split == s for x in samples) for s in SPLITS} | {"total": len(samples)},
        "per_class": {n: per_class.get(n, {"train": 0, "val": 0, "total": 0}) for n in CLASS_NAMES},
        "per_restaurant": _by_split([(s.meta["restaurant"], s.split) for s in samples]),
        "per_verdict": _by_split([(s.meta["verdict"], s.split) for s in samples]),
        "hard_negatives": sum(s.meta["verdict"] == "false_positive" for s in samples),
        "empty_images": sum(not s.labels for s in samples),
        "boxes_removed": sum(s.meta["boxes_removed"] for s in samples),
        "boxes_relabelled": sum(s.meta["boxes_relabelled"] for s in samples),
        "context_boxes": sum(s.meta["context_boxes"] for s in samples),
        "skipped": skipped,
        "groups": _by_split([(s.meta["group"], s.split) for s in samples]),
        "files": [
            {
                "image": s.image_path,
                "event_id": s.meta["event_id"],
                "split": s.split,
                "group": s.meta["group"],
                "verdict": s.meta["verdict"],
                "boxes": len(s.labels),
            }
            for s in samples
        ],
    }


def _table(title: str, rows: dict[str, dict[str, int]]) -> list[str]:
    lines = [f"| {title} | train | val | total |", "|---|---:|---:|---:|"]
    lines += [f"| {k} | {v['train']} | {v['val']} | {v['total']} |" for k, v in rows.items()]
    return lines if rows else [*lines, "| (none) | 0 | 0 | 0 |"]


def render_datasheet(sheet: dict[str, Any]) -> str:
    """DATASHEET.md: the counts as tables, then how the data was made and what to beware of."""
    f, sp, im = sheet["filters"], sheet["split"], sheet["images"]
    skipped = ", ".join(f"{k} {v}" for k, v in sheet["skipped"].items() if v) or "none"
    return "\n".join(
        [
            "# Datasheet: reviewed kitchen alerts",
            "",
            f"Exported {sheet['created_at']} by Bright Kitchen {sheet['software_version']}. Alerts started "
            f"from {f['since'] or 'the first'} until {f['until'] or 'now'}; restaurants: "
            f"{', '.join(f['restaurants']) or 'all'}.",
            "",
            f"- images: {im['total']} (train {im['train']}, val {im['val']}); hard negatives "
            f"(false positives) {sheet['hard_negatives']}; images without any box {sheet['empty_images']}",
            f"- boxes removed by false-positive verdicts: {sheet['boxes_removed']}; relabelled: "
            f"{sheet['boxes_relabelled']}; boxes elsewhere in the frame (unreviewed detections): "
            f"{sheet['context_boxes']}",
            f"- left out: {skipped}",
            f"- split: whole groups by {sp['group_by']} (restaurant/camera/day in {sp['timezone']}), "
            f"val share {sp['val_fraction']} by a stable hash of the group; {len(sheet['groups'])} groups",
            "",
            "## Boxes per class",
            "",
            *_table("class", sheet["per_class"]),
            "",
            "## Images per restaurant",
            "",
            *_table("restaurant", sheet["per_restaurant"]),
            "",
            "## Images per verdict",
            "",
            *_table("verdict", sheet["per_verdict"]),
            "",
            "## How it was made",
            "",
            "Each image is the clean snapshot (no drawn boxes) of an alert's best frame, as the edge agent",
            "sent it. Its boxes are the edge model's detections in that frame: those behind the alert,",
            "judged by an inspector, and the others in the frame as detected. Confirmed alerts keep them;",
            "false positives lose the offending boxes behind the alert (or have them relabelled where the",
            "review says `relabel: <class>`) and stay as hard negatives; unclear alerts are left out.",
            "",
            "## Caveats",
            "",
            "- Boxes elsewhere in the frame are the model's own detections at the edge's threshold, judged",
            "  by no one: objects it missed have no box and its mistakes there stay (alerts from older",
            "  agents carry only the boxes behind the alert). Check the frames in Label Studio or CVAT",
            "  (`label_studio/tasks.json`, `coco/annotations.json`) and bring them back with",
            "  `brightkitchen train import-labels` before training on them.",
            "- Confirmed boxes are model predictions that an inspector accepted as a violation, not",
            "  pixel-checked annotations; their corners are as loose as the model's.",
            "- Alerts come from where the deployed model fires: the data over-represents scenes it already",
            "  finds, and holds no examples of violations it missed.",
            "",
        ]
    )
