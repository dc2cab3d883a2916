"""Export trained weights to a ``models/<name>-<version>/`` folder that the edge loads.

ONNX opset 18, static input (default 320x192: a 16:9 camera frame letterboxed at 320 px wide wastes no
compute on padding), fp32 (INT8 was measured not to pay on x86: see DESIGN.md). The folder gets the label
map, a card with sha256, input size and CPU latency, and a README rendering of the card; ``train eval``
adds the metrics.
"""

from __future__ import annotations

import json
import logging
import shutil
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from brightkitchen.model_card import (
    CARD_FILE,
    LABELS_FILE,
    MODEL_FILE,
    FoodClassifierCard,
    ModelCard,
    file_sha256,
)
from training import offline
from training.classes import CLASS_NAMES, label_map

log = logging.getLogger(__name__)
OPSET = 18


def export_onnx(weights: Path, width: int, height: int) -> Path:
    """Ultralytics ONNX export with a static ``height``x``width`` input; returns the .onnx path."""
    offline.prepare()
    from ultralytics import YOLO

    model = YOLO(str(weights))
    names = [model.names[i] for i in range(len(model.names))]
    if names != list(CLASS_NAMES):
        raise ValueError(f"{weights} has classes {names}, expected {list(CLASS_NAMES)} (training/classes.py)")
    path = model.export(format="onnx", imgsz=[height, width], opset=OPSET, simplify=True, dynamic=False)
    return Path(path)


def measure_latency_ms(model_dir: Path, threads: int, runs: int = 50) -> float:
    """Median single-image latency of the edge's detector (pre + inference + post) on a 640x360 frame."""
    import cv2

    from edge_agent.detector import Detector

    detector = Detector.load(model_dir, threads=threads)
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8), (9, 9), 3)
    for _ in range(5):
        detector.detect(frame)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        detector.detect(frame)
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def write_model_folder(
    onnx_path: Path, out: Path, name: str, version: str, width: int, height: int, training: dict
) -> ModelCard:
    """Assemble model.onnx, labels.json and card.json in ``out`` and measure latency."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(onnx_path, out / MODEL_FILE)
    (out / LABELS_FILE).write_text(json.dumps(label_map(), indent=2) + "\n")
    card = ModelCard(
        name=name,
        version=version,
        sha256=file_sha256(out / MODEL_FILE),
        input_width=width,
        input_height=height,
        opset=OPSET,
        classes=list(CLASS_NAMES),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        training=training,
    )
    write_card(out, card)
    card.latency_ms = {f"cpu_{t}_threads": measure_latency_ms(out, t) for t in (1, 2)}
    card.size_bytes = (out / MODEL_FILE).stat().st_size
    write_card(out, card)
    log.info("model folder %s: %.1f MB, latency %s", out, card.size_bytes / 1e6, card.latency_ms)
    return card


NOTES_MARKER = "<!-- above: generated from card.json; below: notes by hand, kept when it is rewritten -->"


def write_card(model_dir: Path, card: ModelCard) -> None:
    """Write card.json and its human rendering README.md, keeping the notes below ``NOTES_MARKER``."""
    (model_dir / CARD_FILE).write_text(card.model_dump_json(indent=2) + "\n")
    readme = model_dir / "README.md"
    notes = readme.read_text().partition(NOTES_MARKER)[2] if readme.exists() else ""
    readme.write_text(render_card(card) + "\n" + NOTES_MARKER + (notes or "\n"))


def food_classifier_line(spec: FoodClassifierCard) -> str:
    """One line on a model folder's food classifier: file, size, hash, input, classes, val accuracy."""
    size = (spec.model_extra or {}).get("size_bytes")
    top1 = spec.metrics.get("val_top1")
    return (
        f"food classifier: `{spec.file}`"
        + (f", {size / 1e6:.1f} MB" if size else "")
        + f", sha256 `{spec.sha256[:16]}…`, input {spec.input_size}x{spec.input_size} "
        f"(the box grown x{spec.context}, squashed), classes ({len(spec.classes)}): {', '.join(spec.classes)}"
        + (f"; val top-1 {top1:.3f}" if top1 is not None else "")
    )


def render_card(card: ModelCard) -> str:
    """The model card as Markdown."""
    t = card.training
    lines = [
        f"# Model card: {card.name} {card.version}",
        "",
        "YOLO detector for Bright Kitchen (cutting boards by colour, food by category, food containers),",
        ("fine-tuned from the weights named below" if t and t.get("weights") else "trained from scratch")
        + " on procedurally generated kitchen scenes.",
        "See the project README for the gap between synthetic and real footage.",
        "",
        f"- file: `model.onnx`, {(card.size_bytes or 0) / 1e6:.1f} MB, sha256 `{card.sha256}`",
        f"- input: {card.input_width}x{card.input_height} (static), ONNX opset {card.opset}, fp32",
        f"- classes ({len(card.classes)}): {', '.join(card.classes)}",
        f"- created: {card.created_at}",
    ]
    if card.latency_ms:
        lines.append(
            "- CPU latency per 640x360 frame, median (letterbox + inference + NMS): "
            + ", ".join(f"{v} ms ({k.replace('_', ' ')})" for k, v in card.latency_ms.items())
        )
    if card.food_classifier is not None:
        lines.append("- " + food_classifier_line(card.food_classifier))
    if t:
        lines += ["", "## Training", ""]
        keys = ("machine", "train_seconds", "weights", "epochs", "imgsz", "batch", "arch", "train_arguments")
        for key in keys:
            if t.get(key) is not None:  # "weights: None" says nothing a from-scratch line did not
                lines.append(f"- {key.replace('_', ' ')}: {t[key]}")
        ds = t.get("dataset", {})
        if ds:
            synthetic = (ds.get("count") or 0) - (ds.get("real") or {}).get("used", 0)
            lines.append(
                f"- data: {synthetic} synthetic images, seeds {ds.get('seeds')}, "
                f"fingerprint `{ds.get('fingerprint', '')[:16]}`"
            )
        if ds.get("real"):
            real = ds["real"]
            lines.append(
                f"- real data: {real['used']} of the training images ({real['available']} distinct, "
                f"ratio {real.get('ratio')}) from {', '.join(real['folders'])}"
            )
    m = card.metrics
    if m.get("per_class"):
        lines += [
            "",
            f"## Held-out detection metrics (data seed {m.get('data_seed')}, "
            f"{m.get('images')} images, through ONNX Runtime"
            + (f"; {m['protocol']})" if m.get("protocol") else ")"),
            "",
            "| class | instances | P | R | mAP50 | mAP50-95 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for row in m["per_class"]:
            lines.append(
                f"| {row['name']} | {row['instances']} | {row['precision']:.3f} | {row['recall']:.3f} "
                f"| {row['map50']:.3f} | {row['map50_95']:.3f} |"
            )
    if m.get("events"):
        e = m["events"]
        lines += [
            "",
            "## Event-level metrics on held-out synthetic clips",
            "",
            f"- clips: {e.get('clips')}, ground-truth events: {e.get('gt_events')}",
            f"- precision {e.get('precision'):.3f}, recall {e.get('recall'):.3f}, "
            f"median onset latency {e.get('median_onset_latency_s')} s",
        ]
        if "on_time_recall" in e:  # cards evaluated before it was measured lack it
            lines.append(
                f"- found within T + 1 s of the onset: {e['on_time_recall']:.3f} ({e['late']} late alarms, "
                f"{e['false_alerts']} false alerts)"
            )
        if e.get("late_from_visible") is not None:
            lines.append(
                f"- counted from the first frame that shows the violation (hands hide onsets): "
                f"{e['late_from_visible']} late, {e['missed_visible']} missed though shown for T"
            )
    return "\n".join(lines) + "\n"
