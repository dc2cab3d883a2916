"""Edge throughput: Ultralytics' ``predict(stream=True)`` loop versus the edge pipeline, same clips and model.

Sides, each in a fresh subprocess (so peak RSS and imports do not mix):

- ``ultralytics``: ``YOLO(weights).predict(source=clip, stream=True, imgsz, conf, iou, vid_stride=k)``, where
  ``weights`` is by default the model folder's own ``model.onnx`` (Ultralytics runs it through its ONNX
  Runtime backend: the same file on both sides) or the ``.pt`` it was exported from; its boxes
  (``sv.Detections.from_ultralytics``) go through the pipeline's own tracker, rules and event stages, so
  event recall is comparable. No motion gate, no evidence: a plain loop.
- ``pipeline``: ``edge_agent`` as the agent runs a camera (``FrameSource``, decoded ahead in its own thread by
  ``prefetch`` → ``CameraPipeline``: motion gate (``--max-detect-fps`` caps its rate),
  ONNX Runtime detector, tracker, rules, events, and evidence — ring buffer, JPEG snapshots and H.264 clips
  — unless ``--no-evidence``).
- ``pipeline-nogate``: the same with the motion gate off, to show what ONNX Runtime alone buys.

Fairness: both read every ``k``-th frame of each clip, ``k = floor(clip fps / --fps)`` (12-fps clips and
``--fps 5`` → every 2nd frame, 6 fps; Ultralytics' ``vid_stride`` keeps frames k-1, 2k-1, …, the pipeline
0, k, 2k, …), at the model's input size (an ``.onnx`` has a fixed one; for a ``.pt``, ``--imgsz``, default
the ONNX model's longer side), with the same confidence and NMS IoU and ``--threads`` (torch's, and ONNX
Runtime's intra-op on the pipeline side; Ultralytics' own ONNX Runtime session takes its default, one
thread per core). Timing starts after the model is loaded and has run once; decoding the video is inside
the timed loop for both sides. With ``--repeat``, the sides run interleaved and the throughput ratio is
taken per round (two runs next to each other in time), then its median.

Then ``cameras``: N simulated 5-fps cameras (the clips looped and paced in real time) in one process with
one shared detector session, one ``CameraWorker`` thread each as in the agent (evidence on, no MQTT),
N = 1, 2, 4, 6, … until a camera cannot keep ``--fps`` (fewer than 95 % of its frames in the window).

    .venv/bin/python bench/edge_throughput.py --model models/bk-detector-0.7.0 --clips data/clips-heldout
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

if TYPE_CHECKING:
    from edge_agent.config import EdgeConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIDES = ("ultralytics", "pipeline", "pipeline-nogate")
KEEP_UP_SHARE = 0.95  # a camera keeps its fps when it processed at least this share of its frames


# --------------------------------------------------------------------------------------------- helpers


def clip_list(folder: Path, limit: int | None) -> list[Path]:
    clips = sorted(p for p in folder.glob("*.mp4") if p.with_suffix(".json").exists())
    if not clips:
        raise SystemExit(f"no *.mp4 with a ground-truth .json beside it in {folder}")
    return clips[:limit] if limit else clips


def clip_fps(path: Path) -> float:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return fps if 0 < fps < 1000 else 25.0


def video_s(path: Path) -> float:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
    cap.release()
    return n / clip_fps(path)


def stride_for(file_fps: float, want_fps: float) -> int:
    """Keep every k-th frame: the lowest rate not below ``want_fps``."""
    return max(1, math.floor(file_fps / want_fps + 1e-6))


def rusage_cpu_s() -> float:
    """User + system CPU seconds of this process, all its threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


STAGE_MS: dict[str, float] = defaultdict(float)


def _time_calls(owner: Any, name: str, stage: str) -> None:
    """Wrap ``owner.name`` (class method or module function) to add its duration to ``STAGE_MS[stage]``."""
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            STAGE_MS[stage] += (time.perf_counter() - t0) * 1000

    setattr(owner, name, timed)


def instrument_stages() -> None:
    """Time the pipeline's stages in this process (single camera thread only: the totals are global)."""
    from edge_agent import evidence
    from edge_agent.detector import Detector
    from edge_agent.events import EventTracker
    from edge_agent.motion import MotionGate
    from edge_agent.rules.base import Rule
    from edge_agent.tracking import Tracker

    _time_calls(MotionGate, "check", "motion")
    _time_calls(Detector, "preprocess", "preprocess")
    _time_calls(Detector, "postprocess", "postprocess")
    _time_calls(Tracker, "update", "track")
    _time_calls(Rule, "evaluate", "rules")
    _time_calls(EventTracker, "update", "events")
    _time_calls(evidence.EvidenceRecorder, "push", "evidence")
    _time_calls(evidence.EvidenceRecorder, "snapshots", "evidence")
    # Clips encode on the recorder's own thread: "clip_encode" is that thread's time, overlapping the rest;
    # "clip_wait" is the camera thread waiting for the last clips at the end of a video (``flush``).
    _time_calls(evidence.EvidenceRecorder, "flush", "clip_wait")
    _time_calls(evidence, "encode_mp4", "clip_encode")
    _time_calls(evidence, "encode_jpeg", "evidence_encode")


class AlertLog:
    """Alerts as replay reports them (rule, start, alert, end), from the event stage's changes."""

    def __init__(self) -> None:
        self.found: dict[str, dict[str, Any]] = {}

    def add(self, items: list[Any]) -> None:
        from edge_agent.events import EventChange

        for item in items:
            if not isinstance(item, EventChange):
                continue
            ev, key = item.event, str(item.event.event_id)
            if item.phase == "new":
                alert_t = ev.alert_t if ev.alert_t is not None else ev.start_t
                self.found[key] = {"rule": ev.rule, "start": ev.start_t, "alert": alert_t, "end": None}
            elif item.phase == "end" and key in self.found:
                self.found[key]["end"] = ev.last_t

    def alerts(self) -> list[dict[str, Any]]:
        return sorted(self.found.values(), key=lambda a: a["start"])


def score_clip(clip: Path, alerts: list[dict[str, Any]], cfg: EdgeConfig) -> dict[str, Any]:
    """The clip's alerts against its ground truth, scored as ``train eval`` scores them."""
    from training.event_eval import on_time_limits
    from training.event_eval import score_clip as score

    truth = json.loads(clip.with_suffix(".json").read_text())["events"]
    return asdict(score(clip.name, alerts, truth, on_time_limits(cfg)))


def base_config(
    model_dir: Path, clips: list[Path], fps: float, args: argparse.Namespace, realtime: bool
) -> Any:
    from edge_agent.config import CameraConfig, EdgeConfig, RuleConfig
    from edge_agent.replay import DEFAULT_RULES

    return EdgeConfig(
        agent={"id": "bench", "restaurant": "bench"},
        model={"path": model_dir, "threads": args.threads, "confidence": args.conf, "iou": args.iou},
        motion={"enabled": True, "max_detect_fps": args.max_detect_fps or None},
        cameras=[
            CameraConfig(
                id=f"cam{i:02d}",
                source=str(clip),
                fps=fps,
                realtime=realtime,
                loop=realtime,
                rules=[RuleConfig(type=t) for t in DEFAULT_RULES],
            )
            for i, clip in enumerate(clips)
        ],
    )


# ------------------------------------------------------------------------------------------------ sides


def run_pipeline(args: argparse.Namespace, gate: bool) -> dict[str, Any]:
    """The edge pipeline over each clip, as one agent camera (not paced); stages timed."""
    instrument_stages()
    from edge_agent.detector import Detector, DetectorSlot
    from edge_agent.pipeline import CameraPipeline
    from edge_agent.sources import FrameSource, prefetch

    clips = clip_list(args.clips, args.limit)
    t0 = time.perf_counter()
    detector = Detector.load(args.model, threads=args.threads)
    detector.detect(_first_frame(clips[0]))  # warm-up, like the other side
    load_s = time.perf_counter() - t0
    STAGE_MS.clear()
    per_clip, wall, cpu, decode_ms, infer_ms = [], 0.0, 0.0, 0.0, 0.0
    frames_seen = frames_detected = 0
    for clip in clips:
        stride = stride_for(clip_fps(clip), args.fps)
        cfg = base_config(args.model, [clip], clip_fps(clip) / stride, args, realtime=False)
        cfg = cfg.model_copy(update={"motion": cfg.motion.model_copy(update={"enabled": gate})})
        cam = cfg.cameras[0]
        pipeline = CameraPipeline(cam, cfg, DetectorSlot(detector), evidence=args.evidence)
        log = AlertLog()
        w0, c0 = time.perf_counter(), rusage_cpu_s()
        frames = prefetch(FrameSource(cam, threading.Event(), strict=True).frames())
        while True:
            d0 = time.perf_counter()
            frame = next(frames, None)
            decode_ms += (time.perf_counter() - d0) * 1000
            if frame is None:
                break
            log.add(pipeline.process(frame))
        log.add(pipeline.finish())
        wall += time.perf_counter() - w0
        cpu += rusage_cpu_s() - c0
        frames_seen += pipeline.frames_seen
        frames_detected += pipeline.frames_detected
        infer_ms += pipeline.inference_ms_total
        per_clip.append(
            {
                **score_clip(clip, log.alerts(), cfg),
                "stride": stride,
                "frames": pipeline.frames_seen,
                "video_s": video_s(clip),
            }
        )
    stages = {
        "decode": decode_ms,
        **dict(STAGE_MS),
        "inference": infer_ms,
    }
    return summarise_side(
        "pipeline" if gate else "pipeline-nogate",
        per_clip,
        wall,
        cpu,
        load_s,
        frames_seen,
        frames_detected,
        stages,
    )


def _first_frame(clip: Path) -> Any:
    cap = cv2.VideoCapture(str(clip), cv2.CAP_FFMPEG)
    ok, image = cap.read()
    cap.release()
    if not ok:
        raise SystemExit(f"cannot read {clip}")
    return image


def run_ultralytics(args: argparse.Namespace) -> dict[str, Any]:
    """``YOLO.predict(stream=True)`` over each clip; its boxes through our tracker, rules and events."""
    from training.offline import prepare

    prepare(threads=args.threads)
    import supervision as sv
    import torch
    from ultralytics import YOLO

    from brightkitchen.model_card import LABELS_FILE, LabelInfo
    from edge_agent.config import ModelSection
    from edge_agent.detector import class_thresholds
    from edge_agent.events import EventTracker
    from edge_agent.rules import build_rules
    from edge_agent.rules.base import LabelMap
    from edge_agent.sources import Frame
    from edge_agent.tracking import Tracker

    labels = [LabelInfo.model_validate(x) for x in json.loads((args.model / LABELS_FILE).read_text())]
    clips = clip_list(args.clips, args.limit)
    t0 = time.perf_counter()
    model = YOLO(str(args.weights), task="detect")
    names = [model.names[i] for i in sorted(model.names)]
    if names != [label.name for label in labels]:
        raise SystemExit(
            f"{args.weights} classes {names} differ from {args.model}'s labels: not the same model"
        )
    # The edge's least score per kind (food lower): predict at the lowest, keep each box above its class's.
    floors = class_thresholds(labels, args.conf, ModelSection(path=args.model).confidence_by_kind)
    predict = functools.partial(
        model.predict, imgsz=args.imgsz, conf=float(floors.min()), iou=args.iou, device="cpu", verbose=False
    )
    list(predict(source=_first_frame(clips[0])))  # set up the predictor and warm up, like the other side
    torch.set_num_threads(args.threads)
    load_s = time.perf_counter() - t0
    STAGE_MS.clear()
    instrument_stages()
    stages: dict[str, float] = defaultdict(float)
    per_clip, wall, cpu = [], 0.0, 0.0
    frames_seen = 0
    for clip in clips:
        file_fps = clip_fps(clip)
        stride = stride_for(file_fps, args.fps)
        cfg = base_config(args.model, [clip], file_fps / stride, args, realtime=False)
        cam = cfg.cameras[0]
        rules = build_rules(cam.rules, LabelMap(labels), cfg.palette)
        tracker = Tracker.from_config(cfg.tracking, labels)
        events = EventTracker(cam.id, cam.rules)
        log = AlertLog()
        started = datetime.now(UTC)
        n = 0
        w0, c0 = time.perf_counter(), rusage_cpu_s()
        for n, result in enumerate(predict(source=str(clip), stream=True, vid_stride=stride), start=1):
            for key, ms in result.speed.items():
                stages[key] += ms or 0.0
            p0 = time.perf_counter()
            t_s = (n * stride - 1) / file_fps  # vid_stride keeps frames k-1, 2k-1, ...
            frame = Frame(cam.id, n - 1, t_s, started + timedelta(seconds=t_s), result.orig_img)
            raw = sv.Detections.from_ultralytics(result)
            dets = tracker.update(raw[raw.confidence >= floors[raw.class_id]], t_s)
            hits = [hit for rule in rules for hit in rule.evaluate(dets, frame.size, frame.at)]
            log.add(events.update(hits, frame, dets))
            stages["ours"] += (time.perf_counter() - p0) * 1000
        log.add(events.finish())
        wall += time.perf_counter() - w0
        cpu += rusage_cpu_s() - c0
        frames_seen += n
        per_clip.append(
            {**score_clip(clip, log.alerts(), cfg), "stride": stride, "frames": n, "video_s": video_s(clip)}
        )
    stages.update({k: v for k, v in STAGE_MS.items() if k in ("track", "rules", "events")})
    return summarise_side("ultralytics", per_clip, wall, cpu, load_s, frames_seen, frames_seen, dict(stages))


def summarise_side(
    side: str,
    per_clip: list[dict[str, Any]],
    wall_s: float,
    cpu_s: float,
    load_s: float,
    frames_seen: int,
    frames_detected: int,
    stages_ms: dict[str, float],
) -> dict[str, Any]:
    from training.event_eval import ClipResult, summarise

    scored = {f.name for f in fields(ClipResult)}
    events = summarise([ClipResult(**{k: v for k, v in c.items() if k in scored}) for c in per_clip])
    inference = stages_ms.get("inference", 0.0)
    decode = stages_ms.get("decode")
    out: dict[str, Any] = {
        "side": side,
        "clips": len(per_clip),
        "frames": frames_seen,
        "frames_detected": frames_detected,
        "gate_skipped_share": 1 - frames_detected / frames_seen if frames_seen else 0.0,
        "wall_s": wall_s,
        "fps": frames_seen / wall_s if wall_s else 0.0,
        "cpu_s": cpu_s,
        "cpu_ms_per_frame": cpu_s * 1000 / frames_seen if frames_seen else 0.0,
        "cores_busy": cpu_s / wall_s if wall_s else 0.0,
        "load_s": load_s,
        "peak_rss_mb": peak_rss_mb(),
        **{k: events[k] for k in ("gt_events", "alerts", "matched", "recall", "precision")},
        "max_onset_latency_s": events["max_onset_latency_s"],
        "median_onset_latency_s": events["median_onset_latency_s"],
        "late_alerts": events["late"],
        "stages_ms": {k: round(v, 1) for k, v in stages_ms.items()},
        "inference_ms_per_detected_frame": inference / frames_detected if frames_detected else 0.0,
        "per_clip": per_clip,
        "loadavg": os.getloadavg(),
    }
    if frames_detected and inference:
        # Wall time that is not inference, per detector run, as a share of inference. Ultralytics decodes
        # inside its loader, so only the figure with decoding exists for it.
        rest = wall_s * 1000 - inference - (decode or 0.0)
        if decode is None:
            out["overhead_pct_with_decode"] = 100 * rest / inference
        else:
            out["overhead_pct"] = 100 * rest / inference
            out["overhead_pct_with_decode"] = 100 * (rest + decode) / inference
            work = rest - stages_ms.get("evidence_encode", 0.0) - stages_ms.get("clip_wait", 0.0)
            out["overhead_pct_without_evidence_encode"] = 100 * work / inference
            # The measure: per frame the pipeline handles (skipped by the gate or not), the time
            # outside inference, decoding and evidence encoding, against the time of one inference.
            out["overhead_ms_per_frame"] = work / frames_seen
            out["overhead_pct_per_frame"] = 100 * (work / frames_seen) / (inference / frames_detected)
    return out


def run_cameras(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """N paced, looping cameras in one process with one shared detector session, as the agent runs them."""
    from edge_agent.camera import CameraWorker
    from edge_agent.detector import Detector, DetectorSlot

    clips = clip_list(args.clips, None)
    sources = [clips[i % len(clips)] for i in range(n)]
    cfg = base_config(args.model, sources, args.fps, args, realtime=True)
    slot = DetectorSlot(Detector.load(args.model, threads=args.threads))
    outputs = defaultdict(int)
    lock = threading.Lock()

    def sink(item: Any, pipeline: Any) -> None:
        with lock:
            outputs[type(item).__name__] += 1

    workers = [CameraWorker(cam, cfg, slot, sink) for cam in cfg.cameras]
    for w in workers:
        w.start()
        time.sleep(0.05)
    time.sleep(args.camera_warmup_s)
    read0 = [w.source.frames_read for w in workers]
    det0 = [w.pipeline.frames_detected for w in workers]
    w0, c0 = time.monotonic(), rusage_cpu_s()
    load0 = os.getloadavg()[0]
    time.sleep(args.camera_seconds)
    window = time.monotonic() - w0
    cpu = rusage_cpu_s() - c0
    read = [w.source.frames_read - r for w, r in zip(workers, read0, strict=True)]
    det = [w.pipeline.frames_detected - d for w, d in zip(workers, det0, strict=True)]
    for w in workers:
        w.stop_event.set()
    for w in workers:
        w.stop(30)
    fps_each = [r / window for r in read]
    return {
        "cameras": n,
        "window_s": round(window, 1),
        "fps_min": min(fps_each),
        "fps_mean": sum(fps_each) / n,
        "kept_up": min(fps_each) >= KEEP_UP_SHARE * args.fps,
        "gate_skipped_share": 1 - sum(det) / sum(read) if sum(read) else 0.0,
        "cpu_cores_used": cpu / window,
        "peak_rss_mb": peak_rss_mb(),
        "outputs": dict(outputs),
        "loadavg_1min": (load0, os.getloadavg()[0]),
    }


# ------------------------------------------------------------------------------------------------- main


def child(args: argparse.Namespace, what: str, n: int) -> dict[str, Any]:
    """Run one side (or one camera count) in a fresh interpreter; its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [
            sys.executable,
            __file__,
            *args.argv,
            "--child",
            what,
            "--child-n",
            str(n),
            "--child-out",
            out.name,
        ]
        subprocess.run(cmd, check=True)
        return json.loads(Path(out.name).read_text())


def camera_counts(max_n: int) -> list[int]:
    steps = [1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64]
    return [n for n in steps if n < max_n] + [max_n] if max_n > 0 else []


def computed_cameras(side: dict[str, Any], cores: int) -> float:
    """Cameras that ``cores`` fully busy cores carry, from the side's CPU seconds per second of video.

    Conservative: the side processed every k-th frame, a rate at or above ``--fps``.
    """
    video_s = sum(c["video_s"] for c in side["per_clip"])
    return cores / (side["cpu_s"] / video_s)


def report(sides: dict[str, dict[str, Any]], cams: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"clips: {args.clips} ({next(iter(sides.values()))['clips']}), processing every "
        f"{next(iter(sides.values()))['per_clip'][0]['stride']}th frame, {args.threads} threads, "
        f"imgsz {args.imgsz}, conf {args.conf}, iou {args.iou}, evidence {'on' if args.evidence else 'off'}",
        "",
        "| | " + " | ".join(sides) + " |",
        "|---|" + "---|" * len(sides),
    ]

    def row(label: str, fmt: str, key: str) -> None:
        vals = [fmt.format(s[key]) if s.get(key) is not None else "–" for s in sides.values()]
        lines.append(f"| {label} | " + " | ".join(vals) + " |")

    row("frames (at the processing rate)", "{}", "frames")
    row("frames/s", "{:.1f}", "fps")
    row("frames/s of each run", "{}", "fps_runs")
    row("wall s", "{:.1f}", "wall_s")
    row("CPU s (all threads)", "{:.1f}", "cpu_s")
    row("CPU ms per frame", "{:.1f}", "cpu_ms_per_frame")
    row("peak RSS MB", "{:.0f}", "peak_rss_mb")
    row("model load + warm-up s", "{:.1f}", "load_s")
    row("frames skipped by the motion gate", "{:.1%}", "gate_skipped_share")
    row(f"cameras {os.cpu_count()} busy cores carry (from CPU per video s)", "{:.1f}", "computed_cameras")
    row("inference ms per detector run", "{:.1f}", "inference_ms_per_detected_frame")
    row("non-inference ms per processed frame (excl. decode, encoding)", "{:.2f}", "overhead_ms_per_frame")
    row("  … as % of one inference", "{:.1f}", "overhead_pct_per_frame")
    row("all non-inference time, % of inference time (excl. decode)", "{:.1f}", "overhead_pct")
    row("  … without evidence encoding", "{:.1f}", "overhead_pct_without_evidence_encode")
    row("  … with video decoding", "{:.1f}", "overhead_pct_with_decode")
    for s in sides.values():
        found = f"{s['matched']}/{s['gt_events']} ({s['recall']:.0%})"
        s["events"] = f"{found}, {s['alerts']} alerts ({s['precision']:.0%})"
    row("events found / true (recall), alerts (precision)", "{}", "events")
    row("onset latency s, median", "{:.2f}", "median_onset_latency_s")
    row("onset latency s, max", "{}", "max_onset_latency_s")
    row("alerts later than T + 1 s", "{}", "late_alerts")
    lines.append("")
    lines.append("stage totals, ms: " + json.dumps({k: s["stages_ms"] for k, s in sides.items()}))
    if cams:
        lines += [
            "",
            f"| cameras at {args.fps:g} fps | min fps | mean fps | kept up | gate skipped | cores used "
            "| RSS MB | load 1 min |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for c in cams:
            lines.append(
                f"| {c['cameras']} | {c['fps_min']:.2f} | {c['fps_mean']:.2f} | "
                f"{'yes' if c['kept_up'] else 'no'} | "
                f"{c['gate_skipped_share']:.0%} | {c['cpu_cores_used']:.2f} | {c['peak_rss_mb']:.0f} | "
                f"{c['loadavg_1min'][0]:.1f}→{c['loadavg_1min'][1]:.1f} |"
            )
    return "\n".join(lines)


def parse(argv: list[str]) -> argparse.Namespace:
    from edge_agent.config import ModelSection, MotionSection

    model_defaults = {k: f.default for k, f in ModelSection.model_fields.items()}

    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="what Ultralytics loads: the .pt the model was exported from, or (default) the model folder's "
        "model.onnx itself, which Ultralytics runs through its ONNX Runtime backend",
    )
    p.add_argument(
        "--model", type=Path, required=True, help="model folder (model.onnx, labels.json, card.json)"
    )
    p.add_argument(
        "--clips", type=Path, default=Path("/work/data/clips-heldout"), help="*.mp4 + ground-truth .json"
    )
    p.add_argument("--limit", type=int, default=None, help="only the first N clips (smoke tests)")
    p.add_argument(
        "--fps",
        type=float,
        default=5.0,
        help="processing rate; files are read every floor(file fps / fps)th frame",
    )
    p.add_argument(
        "--imgsz",
        type=int,
        default=None,
        help="Ultralytics imgsz for a .pt (default: the ONNX model's longer side; an .onnx gets its own "
        "fixed height x width)",
    )
    p.add_argument(
        "--conf",
        type=float,
        default=model_defaults["confidence"],
        help="confidence threshold, both sides; food keeps the edge's own (default: the edge's)",
    )
    p.add_argument(
        "--iou", type=float, default=model_defaults["iou"], help="NMS IoU, both sides (default: the edge's)"
    )
    p.add_argument(
        "--max-detect-fps",
        type=float,
        default=MotionSection().max_detect_fps,
        help="pipeline side: motion.max_detect_fps, detector runs/s per camera at most (0 or unset: no cap)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    p.add_argument(
        "--evidence",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pipeline side records evidence (ring buffer, JPEGs, H.264 clips)",
    )
    p.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated subset of {','.join(SIDES)}")
    p.add_argument(
        "--max-cameras", type=int, default=16, help="camera sweep: up to this many (0: skip the sweep)"
    )
    p.add_argument("--camera-seconds", type=float, default=30.0, help="camera sweep: measuring window per N")
    p.add_argument(
        "--camera-warmup-s", type=float, default=8.0, help="camera sweep: run this long before measuring"
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each side this often; the run with the median frames/s counts",
    )
    p.add_argument("--json-out", type=Path, default=None, help="also write every figure as JSON here")
    p.add_argument("--child", choices=[*SIDES, "cameras"], help=argparse.SUPPRESS)
    p.add_argument("--child-n", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    card = json.loads((args.model / "card.json").read_text())
    if args.weights is None:
        args.weights = args.model / "model.onnx"
    if args.weights.suffix == ".onnx":
        args.imgsz = [card["input_height"], card["input_width"]]  # a static ONNX input takes no other size
    elif args.imgsz is None:
        args.imgsz = max(card["input_width"], card["input_height"])
    args.argv = [a for a in argv]
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.child:
        if args.child == "cameras":
            result = run_cameras(args, args.child_n)
        elif args.child == "ultralytics":
            result = run_ultralytics(args)
        else:
            result = run_pipeline(args, gate=args.child == "pipeline")
        args.child_out.write_text(json.dumps(result))
        return
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, load {os.getloadavg()}", flush=True
    )
    sides: dict[str, dict[str, Any]] = {}
    runs: dict[str, list[dict[str, Any]]] = {}
    for _ in range(args.repeat):  # sides interleaved, so that a burst of load from others hits each alike
        for side in args.sides.split(","):
            s = child(args, side, 0)
            runs.setdefault(side, []).append(s)
            print(
                f"{side}: {s['fps']:.1f} frames/s, recall {s['recall']:.2f}, load {s['loadavg']}", flush=True
            )
    for side, results in runs.items():
        in_order = [round(r["fps"], 1) for r in results]
        results.sort(key=lambda r: r["fps"])
        sides[side] = {**results[len(results) // 2], "fps_runs": in_order}
        sides[side]["runs"] = [{k: v for k, v in r.items() if k != "per_clip"} for r in results]
    cams: list[dict[str, Any]] = []
    for n in camera_counts(args.max_cameras):
        c = child(args, "cameras", n)
        cams.append(c)
        print(f"{n} cameras: min {c['fps_min']:.2f} fps, {c['cpu_cores_used']:.2f} cores", flush=True)
        if not c["kept_up"]:
            break
    if "ultralytics" in sides and "pipeline" in sides:
        # Each round's two runs were next to each other in time: their ratio cancels slow drifts in load.
        pairs = zip(sides["ultralytics"]["fps_runs"], sides["pipeline"]["fps_runs"], strict=True)
        ratios = sorted(p / u for u, p in pairs)
        sides["pipeline"]["ratio_runs"] = [round(r, 2) for r in ratios]
        print(
            f"throughput ratio pipeline / ultralytics: median of rounds {statistics.median(ratios):.2f}x "
            f"(each round: {', '.join(f'{r:.2f}' for r in ratios)}); of median frames/s "
            f"{sides['pipeline']['fps'] / sides['ultralytics']['fps']:.2f}x"
        )
    for side, s in sides.items():
        s["computed_cameras"] = computed_cameras(s, os.cpu_count() or 1)
        print(
            f"{side}: its CPU per video second would let {os.cpu_count()} cores carry "
            f"{s['computed_cameras']:.1f} cameras"
        )
    print(report(sides, cams, args))
    if args.json_out:
        args.json_out.write_text(json.dumps({"sides": sides, "cameras": cams}, indent=1))


if __name__ == "__main__":
    main()
