"""The whole agent on a synthetic clip with a real model: replay, and alerts with evidence through Mosquitto.

Needs a model folder in models/ (or $BK_TEST_MODEL); skipped without one.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import av
import pytest
import yaml

from edge_agent import evidence
from edge_agent.agent import Agent
from edge_agent.config import EdgeConfig
from edge_agent.detector import Detector, DetectorSlot
from edge_agent.events import EventChange
from edge_agent.evidence import Media
from edge_agent.pipeline import CameraPipeline
from edge_agent.replay import replay_config, replay_video
from edge_agent.sources import FrameSource

from .conftest import AUTOSAVED_S, REPO, Broker, Collector, wait_until
from .test_delivery import OUTAGE_S


def _config(broker: Broker, clip: Path, model: Path, tmp: Path) -> dict[str, Any]:
    return {
        "agent": {"id": "box-1", "restaurant": "r-a"},
        "mqtt": broker.edge_mqtt(),
        "model": {"path": str(model), "threads": 1},
        "outbox": {"path": str(tmp / "outbox.sqlite")},
        "cameras": [
            {
                "id": "cam1",
                "source": str(clip),
                "fps": 5,
                "realtime": False,
                "rules": [
                    {"type": "board_misuse", "min_duration_s": 2},
                    {"type": "stacked_containers", "min_duration_s": 2},
                ],
            }
        ],
    }


def _check_delivery(collector: Collector, expected_events: int) -> None:
    events = collector.of("event")
    keys = [(e.event_id, e.seq) for e in events]
    assert len(keys) == len(set(keys)), "no event message twice"
    ids = {e.event_id for e in events}
    assert len(ids) == expected_events
    media = {m.sha256: m for m in collector.of("media")}
    for event_id in ids:
        last = max((e for e in events if e.event_id == event_id), key=lambda e: e.seq)
        assert last.phase == "end"
        assert {r.kind for r in last.media} == {"snapshot", "snapshot_clean", "clip"}
        for ref in last.media:
            assert ref.sha256 in media, f"{ref.kind} of {event_id} never arrived"
        clip = next(media[r.sha256] for r in last.media if r.kind == "clip")
        with av.open(io.BytesIO(clip.blob())) as container:
            assert container.streams.video[0].codec_context.name == "h264"
    assert not collector.errors


def test_replay_matches_the_ground_truth_format(model_dir: Path, synth_clip: Path) -> None:
    events = replay_video(synth_clip, model_dir)
    truth = json.loads(synth_clip.with_suffix(".json").read_text())
    for ev in events:
        assert ev.rule in {"board_misuse", "stacked_containers"}
        assert 0 <= ev.start <= ev.alert and (ev.end is None or ev.end >= ev.start)
        assert ev.start <= truth["duration_s"]
    print(f"\nreplay: {len(events)} alerts, ground truth {len(truth['events'])} events")


def test_cli_replay_prints_one_json_line_per_event(model_dir: Path, synth_clip: Path, tmp_path: Path) -> None:
    second = tmp_path / "second.mp4"  # two files in one call, each its own camera
    shutil.copyfile(synth_clip, second)
    args = ["edge", "replay", str(synth_clip), str(second), "--model", str(model_dir), "--json"]
    proc = subprocess.run(
        [sys.executable, "-m", "brightkitchen", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    again = [
        {"video": str(video), **e.as_dict()}
        for video in (synth_clip, second)
        for e in replay_video(video, model_dir)
    ]
    assert lines, "the clip's violations give events"
    # Event ids are fresh UUIDs each run; everything else is deterministic.
    assert [{**x, "event_id": None} for x in lines] == [{**x, "event_id": None} for x in again]
    assert {x["camera"] for x in lines} == {synth_clip.stem.replace(".", "-"), "second"}
    for line in lines:
        assert {"event_id", "rule", "camera", "start", "end", "severity", "score", "details"} <= line.keys()
        assert line["start"] <= line["seen"] <= line["alert"]  # the model's first sighting, between
    bar = proc.stderr.replace("\r", "\n").splitlines()
    for video in (synth_clip, second):
        assert any(x.startswith(f"replay {video.name}: 100%") for x in bar), proc.stderr[-500:]


def test_alerts_with_evidence_arrive_through_the_broker_despite_an_outage(
    broker: Broker, collector: Collector, model_dir: Path, synth_clip: Path, tmp_path: Path
) -> None:
    cfg = EdgeConfig.model_validate(_config(broker, synth_clip, model_dir, tmp_path))
    expected = len(replay_video(synth_clip, model_dir, cfg))
    time.sleep(AUTOSAVED_S)  # the collector's session is on disk
    broker.kill()
    agent = Agent(cfg)
    stop = threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop, True, 60.0))
    thread.start()
    time.sleep(OUTAGE_S)
    broker.start()
    thread.join(240)
    assert not thread.is_alive()
    wait_until(lambda: len({e.event_id for e in collector.of("event")}) >= expected, what="every event")
    time.sleep(1)
    _check_delivery(collector, expected)
    assert collector.of("stats"), "stats are published (at least the final one, at shutdown)"


def test_agent_sigkilled_and_restarted_resumes_its_outbox(
    broker: Broker, collector: Collector, model_dir: Path, synth_clip: Path, tmp_path: Path
) -> None:
    data = _config(broker, synth_clip, model_dir, tmp_path)
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(data))
    time.sleep(AUTOSAVED_S)  # the collector's session is on disk before the broker dies
    broker.kill()
    cmd = [sys.executable, "-m", "brightkitchen", "edge", "run", "--config", str(path)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "outbox.sqlite"

    def queued() -> list[str]:
        if not db.exists():
            return []
        with sqlite3.connect(db) as con:
            if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'outbox'").fetchone():
                return []  # the agent has created the file but not yet its table
            return [r[0] for r in con.execute("SELECT msg_id FROM outbox ORDER BY id")]

    try:
        wait_until(
            lambda: any(m.startswith("media:") for m in queued()), timeout_s=240, what="evidence queued"
        )
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    before = queued()
    broker.start()
    proc = subprocess.run([*cmd, "--until-done"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]

    def missing() -> list[str]:
        events = {f"event:{e.event_id}:{e.seq}" for e in collector.of("event")}
        media = {f"media:{m.event_id}:{m.kind}" for m in collector.of("media")}
        return [m for m in before if m not in events | media]

    # The agent is done once the broker acked; the collector, reconnecting on its own backoff, may get
    # its persistent session's queue a moment later.
    deadline = time.monotonic() + 20
    while missing() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not missing(), f"lost after SIGKILL: {missing()}\nagent log:\n{proc.stderr[-4000:]}"


def test_an_alert_whose_clip_fails_to_encode_still_ends_and_is_let_go(
    model_dir: Path, synth_clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_encoder(images: list, fps: float) -> bytes:
        raise RuntimeError("x264 is gone")

    monkeypatch.setattr(evidence, "encode_mp4", broken_encoder)
    cfg = replay_config(synth_clip, model_dir)
    cam = cfg.cameras[0].model_copy(update={"realtime": False})
    pipeline = CameraPipeline(cam, cfg, DetectorSlot(Detector.load(model_dir, threads=1)))
    out = []
    for frame in FrameSource(cam, threading.Event(), strict=True).frames():
        out += pipeline.process(frame)
    out += pipeline.finish()
    changes = [o for o in out if isinstance(o, EventChange)]
    alerted = {c.event.event_id for c in changes if c.phase == "new"}
    assert alerted, "the clip raises alerts"
    assert {c.event.event_id for c in changes if c.phase == "end"} == alerted
    assert [o.kind for o in out if isinstance(o, Media)] == ["snapshot", "snapshot_clean"] * len(alerted)
    assert pipeline._awaiting_clip == {}, "no event is kept waiting for a clip that will not come"
