"""Reviewed alerts → a training dataset: YOLO folders, COCO JSON, Label Studio tasks and a datasheet.

What each verdict becomes (the clean snapshot is the image; the event's detections are the boxes: those
behind the alert, then the rest of the frame, see ``brightkitchen.contract.VIOLATION_BOXES``):

- ``confirmed``: every box kept as the edge detected it.
- ``false_positive``: the image is kept as a *hard negative*; the offending boxes (only ever among those
  behind the alert) are removed, or relabelled when the review's reason says ``relabel: <class>`` (a
  class of ``training/classes.py``). Offending boxes: ``board_misuse`` → the food boxes (a ``relabel``
  to a board class relabels the board instead: its colour was misread, the food stays);
  ``stacked_containers`` → the upper container (the one whose top is highest); any other rule → every box.
- ``unclear`` and unreviewed alerts are left out; so are alerts without a clean snapshot.

Whole groups of alerts (restaurant + camera + local day by default) go to train or val, so that no scene
is in both; see ``brightkitchen.datasets.assign_splits``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import uuid
import zipfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from tqdm import tqdm

from brightkitchen.contract import VIOLATION_BOXES
from brightkitchen.datasets import (
    Label,
    Sample,
    assign_splits,
    class_id_of,
    coco_json,
    dump_json,
    image_size,
    label_studio_config,
    label_studio_tasks,
    write_data_yaml,
    write_sample,
)
from dashboard.datasheet import datasheet, render_datasheet
from dashboard.media import MediaNotFound, MediaStore
from dashboard.models import Event, Media, Review
from training.classes import CLASS_ID, CLASSES

GroupBy = Literal["day", "camera", "restaurant"]
EXPORTED_VERDICTS = ("confirmed", "false_positive")
RELABEL_RE = re.compile(r"relabel\s*[:=]\s*([A-Za-z_]+)", re.IGNORECASE)
KIND = {c.name: c.kind for c in CLASSES}


@dataclass(frozen=True)
class ExportOptions:
    """Which alerts, and how to split them."""

    since: datetime | None = None
    until: datetime | None = None
    restaurants: tuple[str, ...] = ()
    val_fraction: float = 0.2
    group_by: GroupBy = "day"
    timezone: str = "UTC"  # the local day of an alert, for grouping by day


@dataclass(frozen=True)
class AlertLabels:
    labels: list[Label]
    removed: int
    relabelled: int
    unknown: int  # boxes whose label is not one of our classes (dropped)
    relabel_error: str | None = None


def parse_when(text: str, timezone: str, end: bool = False) -> datetime:
    """A date or date-time typed by a person, in ``timezone`` unless it names its own; as an ``end``, a
    bare date means the end of that day."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM)") from None
    if end and len(text.strip()) == 10:
        when += timedelta(days=1)
    return when if when.tzinfo else when.replace(tzinfo=ZoneInfo(timezone))


def offending(rule: str, detections: list[dict[str, Any]]) -> set[int]:
    """Rows of ``detections`` whose presence makes the alert: what a false-positive verdict blames."""
    kinds = [KIND.get(d["label"]) for d in detections]
    if rule == "board_misuse":
        return {i for i, k in enumerate(kinds) if k == "food"}
    if rule == "stacked_containers":
        containers = [i for i, k in enumerate(kinds) if k == "container"]
        return {min(containers, key=lambda i: detections[i]["box"]["y1"])} if containers else set()
    return set(range(len(detections)))


def alert_labels(
    rule: str, verdict: str, reason: str, detections: list[dict[str, Any]], violation_boxes: int | None = None
) -> AlertLabels:
    """The boxes an alert contributes to the dataset, following the verdict policy of this module.

    Only the first ``violation_boxes`` detections (default: all) are behind the alert and can be blamed;
    the others are the rest of the frame and are kept as detected.
    """
    labels: list[Label | None] = []
    unknown = 0
    for d in detections:
        if d["label"] not in CLASS_ID:
            unknown += 1
            labels.append(None)
            continue
        b = d["box"]
        labels.append(Label(CLASS_ID[d["label"]], b["x1"], b["y1"], b["x2"], b["y2"], d.get("score")))
    removed = relabelled = 0
    error = None
    if verdict == "false_positive":
        behind = detections[:violation_boxes]
        blamed = offending(rule, behind)
        target: int | None = None
        m = RELABEL_RE.search(reason)
        if m:
            try:
                target = class_id_of(m[1].lower(), "review reason")
            except ValueError as exc:
                error = str(exc)
        if target is not None and CLASSES[target].kind == "board" and rule == "board_misuse":
            blamed = {i for i, d in enumerate(behind) if KIND.get(d["label"]) == "board"}
        for i in sorted(blamed):
            if labels[i] is None:
                continue
            if target is None:
                labels[i] = None
                removed += 1
            else:
                labels[i] = labels[i].relabelled(target)
                relabelled += 1
    return AlertLabels([lb for lb in labels if lb is not None], removed, relabelled, unknown, error)


def group_of(event: Event, group_by: GroupBy, tz: ZoneInfo) -> str:
    """The split group of an alert: its restaurant, camera, and (by default) local day."""
    parts = [event.restaurant_id, event.camera.camera_id]
    if group_by == "day":
        parts.append(event.started_at.astimezone(tz).strftime("%Y-%m-%d"))
    return "/".join(parts[: 1 if group_by == "restaurant" else None])


def _reviewed(session: Session, opts: ExportOptions) -> list[Event]:
    query = (
        select(Event)
        .options(selectinload(Event.camera))
        .where(Event.verdict.is_not(None))
        .order_by(Event.started_at, Event.id)
    )
    if opts.since is not None:
        query = query.where(Event.started_at >= opts.since)
    if opts.until is not None:
        query = query.where(Event.started_at < opts.until)
    if opts.restaurants:
        query = query.where(Event.restaurant_id.in_(opts.restaurants))
    return list(session.scalars(query))


def _latest_reasons(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    reasons: dict[uuid.UUID, str] = {}
    for chunk in range(0, len(ids), 500):
        rows = session.execute(
            select(Review.event_id, Review.reason)
            .where(Review.event_id.in_(ids[chunk : chunk + 500]))
            .order_by(Review.created_at, Review.id)
        )
        reasons.update({eid: reason for eid, reason in rows})  # later rows win: the latest review
    return reasons


def _clean_snapshots(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, Media]:
    found: dict[uuid.UUID, Media] = {}
    for chunk in range(0, len(ids), 500):
        query = select(Media).where(
            Media.event_id.in_(ids[chunk : chunk + 500]), Media.kind == "snapshot_clean"
        )
        found.update({m.event_id: m for m in session.scalars(query.order_by(Media.received_at))})
    return found


def export_dataset(
    session: Session, store: MediaStore, out: Path, opts: ExportOptions, progress: bool = False
) -> dict[str, Any]:
    """Write the dataset folder ``out`` (see README, "For ML staff"); returns the datasheet.

    ``progress``: a bar of the snapshots fetched from the media store (the CLI's; the web export has none).
    """
    tz = ZoneInfo(opts.timezone)
    events = _reviewed(session, opts)
    kept = [e for e in events if e.verdict in EXPORTED_VERDICTS]
    snapshots = _clean_snapshots(session, [e.id for e in kept])
    with_image = [e for e in kept if e.id in snapshots]
    reasons = _latest_reasons(session, [e.id for e in with_image])
    splits = assign_splits((group_of(e, opts.group_by, tz) for e in with_image), opts.val_fraction)
    skipped = Counter(
        {
            "unclear": sum(e.verdict == "unclear" for e in events),
            "no_clean_snapshot": len(kept) - len(with_image),
        }
    )
    out.mkdir(parents=True, exist_ok=True)
    write_data_yaml(out)
    samples: list[Sample] = []
    for e in tqdm(with_image, desc="export", unit="image", disable=not progress):
        media = snapshots[e.id]
        try:
            image = store.get(media.storage_key)
        except MediaNotFound:
            skipped["media_file_missing"] += 1
            continue
        width, height = image_size(image) or (e.frame_width, e.frame_height)
        behind = e.details.get(VIOLATION_BOXES)
        result = alert_labels(
            e.rule, e.verdict or "", reasons.get(e.id, ""), e.detections, int(behind) if behind else None
        )
        group = group_of(e, opts.group_by, tz)
        local_day = e.started_at.astimezone(tz).strftime("%Y%m%d")
        sample = Sample(
            stem=f"{e.restaurant_id}.{e.camera.camera_id}.{local_day}.{e.id.hex}",
            split=splits[group],
            width=width,
            height=height,
            labels=result.labels,
            meta={
                "event_id": str(e.id),
                "restaurant": e.restaurant_id,
                "camera": e.camera.camera_id,
                "group": group,
                "started_at": e.started_at.isoformat(),
                "rule": e.rule,
                "verdict": e.verdict,
                "reason": reasons.get(e.id, ""),
                "model": f"{e.model_name} {e.model_version}",
                "boxes_removed": result.removed,
                "boxes_relabelled": result.relabelled,
                "context_boxes": len(e.detections) - int(behind or len(e.detections)),
            },
        )
        skipped["unknown_label_boxes"] += result.unknown
        skipped["bad_relabel"] += result.relabel_error is not None
        write_sample(out, sample, image)
        samples.append(sample)
    dump_json(out / "coco" / "annotations.json", coco_json(samples))
    dump_json(out / "label_studio" / "tasks.json", label_studio_tasks(samples, out.name))
    (out / "label_studio" / "config.xml").write_text(label_studio_config())
    sheet = datasheet(samples, dict(skipped), opts)
    dump_json(out / "datasheet.json", sheet)
    (out / "DATASHEET.md").write_text(render_datasheet(sheet))
    return sheet


def export_zip(session: Session, store: MediaStore, opts: ExportOptions, name: str) -> Path:
    """Export into a temporary folder and pack it as ``<tmp>/<name>.zip`` (the caller deletes its parent)."""
    tmp = Path(tempfile.mkdtemp(prefix="bk-export-"))
    try:
        export_dataset(session, store, tmp / name, opts)
        archive = tmp / f"{name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in sorted((tmp / name).rglob("*")):
                if path.is_file():
                    zf.write(path, path.relative_to(tmp).as_posix())
        shutil.rmtree(tmp / name)
        return archive
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
