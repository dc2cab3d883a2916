"""The retraining loop end to end, with every part real: reviewed alerts → export → tiny training → compare
→ registry → rollout to a running edge agent through Mosquitto (passwords + ACL) → the agent reports the new
model; a corrupted archive is refused (by the registry, and by the agent) and the agent keeps its model.

Processes: Mosquitto, ``brightkitchen dashboard serve --with-ingest`` and ``brightkitchen edge run``; the
CLI steps (admin, export, train) run in-process through the same Typer app.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from brightkitchen.cli import app
from brightkitchen.contract import (
    Box,
    EventMessage,
    MediaMessage,
    camera_topic,
    decode,
    encode,
    utc_now,
)
from brightkitchen.model_card import ModelCard
from dashboard.mqtt_auth import write_mosquitto_auth
from training.classes import CLASS_NAMES

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not shutil.which("mosquitto") and not Path("/usr/sbin/mosquitto").exists(),
        reason="mosquitto is not installed",
    ),
]
REPO = Path(__file__).resolve().parents[1]
MOSQUITTO = "/usr/sbin/mosquitto"
PASSWORD = "secret-pw-1"
runner = CliRunner()


def cli(*args: str, ok: tuple[int, ...] = (0,)) -> str:
    result = runner.invoke(app, list(args), env={"BK_PW": PASSWORD}, catch_exceptions=False)
    logging.basicConfig(level=logging.WARNING, force=True)  # the CLI logged into the runner's closed stream
    assert result.exit_code in ok, result.output
    return result.output


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "condition") -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def wait_port(port: int, proc: subprocess.Popen, log: Path) -> None:
    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"process exited: {log.read_text()[-3000:]}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(up, 60, f"port {port}")


class Listener:
    """The dashboard's broker login, reading one agent's replies and availability straight off the broker."""

    def __init__(self, port: int, password: str) -> None:
        self.messages: list[Any] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-listener", protocol=mqtt.MQTTv5)
        self.client.username_pw_set("dashboard", password)
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("bk/v1/r-a/agent/box-1/#", qos=1)
        self.client.loop_start()
        assert subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(decode(msg.topic, msg.payload))

    def of(self, kind: str) -> list[Any]:
        with self._lock:
            return [m for m in self.messages if m.type == kind]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Mosquitto with the dashboard's logins and ACL, and the dashboard (SQLite, ingest) on free ports."""
    auth = write_mosquitto_auth(tmp_path / "mqtt", ["r-a"])
    mqtt_port, http_port = free_port(), free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(
        f"user root\nlistener {mqtt_port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {auth.password_file}\nacl_file {auth.acl_file}\n"
        "persistence false\nmax_queued_messages 100000\n"
        f"log_dest file {tmp_path / 'mosquitto.log'}\n"
    )
    procs: list[subprocess.Popen] = []
    procs.append(subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL))
    wait_port(mqtt_port, procs[0], tmp_path / "mosquitto.log")
    dash_password = (auth.credentials_dir / "dashboard.txt").read_text().strip()
    dash_cfg = tmp_path / "dashboard.yaml"
    dash_cfg.write_text(
        yaml.safe_dump(
            {
                "database_url": f"sqlite:///{tmp_path / 'dashboard.db'}",
                "secret_key_file": str(tmp_path / "secret_key"),
                "media": {"path": str(tmp_path / "media")},
                "mqtt": {
                    "port": mqtt_port,
                    "username": "dashboard",
                    "password_file": str(auth.credentials_dir / "dashboard.txt"),
                },
                "http": {
                    "port": http_port,
                    "secure_cookies": False,
                    "public_url": f"http://127.0.0.1:{http_port}",
                },
            }
        )
    )
    c = ["--config", str(dash_cfg)]
    cli("dashboard", "migrate", *c)
    cli("dashboard", "add-restaurant", *c, "r-a", "--name", "Restaurant A", "--district", "North")
    for cam in ("cam1", "cam2"):
        cli("dashboard", "add-camera", *c, "r-a", cam)
    cli("dashboard", "add-user", *c, "ml", "--role", "ml", "--password-env", "BK_PW")
    cli(
        "dashboard",
        "add-user",
        *c,
        "insp",
        "--role",
        "inspector",
        "--district",
        "North",
        "--password-env",
        "BK_PW",
    )
    tokens = {u: cli("dashboard", "create-token", *c, u).strip() for u in ("ml", "insp")}
    log = tmp_path / "dashboard.log"
    with log.open("wb") as fh:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "brightkitchen", "dashboard", "serve", *c, "--with-ingest"],
                cwd=REPO,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        )
    wait_port(http_port, procs[1], log)
    base = f"http://127.0.0.1:{http_port}"
    listener = Listener(mqtt_port, dash_password)
    yield {
        "mqtt_port": mqtt_port,
        "auth": auth,
        "config": dash_cfg,
        "media": tmp_path / "media",
        "ml": httpx.Client(base_url=base, headers={"Authorization": f"Bearer {tokens['ml']}"}, timeout=30),
        "insp": httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {tokens['insp']}"}, timeout=30
        ),
        "listener": listener,
        "procs": procs,
        "tmp": tmp_path,
    }
    listener.close()
    for proc in reversed(procs):
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def _detections(label_file: Path) -> list[dict[str, Any]]:
    """A synthetic still's true boxes, as the edge would report them."""
    out = []
    for line in label_file.read_text().splitlines():
        cls, cx, cy, w, h = line.split()
        x1, y1 = max(0.0, float(cx) - float(w) / 2), max(0.0, float(cy) - float(h) / 2)
        x2, y2 = min(1.0, float(cx) + float(w) / 2), min(1.0, float(cy) + float(h) / 2)
        out.append({"label": CLASS_NAMES[int(cls)], "score": 0.8, "box": Box(x1=x1, y1=y1, x2=x2, y2=y2)})
    return out


def _yolo(detections: list[dict[str, Any]]) -> str:
    """What the export must write for these boxes: ``class cx cy w h``, 6 decimals."""
    lines = []
    for d in detections:
        b = d["box"]
        cx, cy = (b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2
        lines.append(
            f"{CLASS_NAMES.index(d['label'])} {cx:.6f} {cy:.6f} {b.x2 - b.x1:.6f} {b.y2 - b.y1:.6f}\n"
        )
    return "".join(lines)


def publish_alerts(port: int, password: str, stills: Path) -> list[dict[str, Any]]:
    """Four alerts as the edge sends them (event + clean snapshot), as restaurant r-a through its ACL."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="e2e-edge-alerts", protocol=mqtt.MQTTv5)
    client.username_pw_set("r-a", password)
    client.connect("127.0.0.1", port)
    client.loop_start()
    alerts = []
    images = sorted((stills / "images").rglob("*.jpg"))[:4]
    for i, image in enumerate(images):
        split = image.parent.name
        detections = _detections(stills / "labels" / split / f"{image.stem}.txt")
        assert any(d["label"].startswith("board_") for d in detections)
        blob = image.read_bytes()
        camera = "cam1" if i < 2 else "cam2"
        event_id = uuid.uuid4()
        started = utc_now() - timedelta(minutes=10 - i)
        media = MediaMessage.from_bytes(
            blob,
            event_id=event_id,
            restaurant="r-a",
            camera=camera,
            kind="snapshot_clean",
            content_type="image/jpeg",
            captured_at=started,
        )
        event = EventMessage(
            event_id=event_id,
            seq=0,
            phase="new",
            restaurant="r-a",
            camera=camera,
            agent="box-1",
            rule="board_misuse",
            severity="high",
            started_at=started,
            sent_at=utc_now(),
            score=0.8,
            detections=detections,
            frame={"width": 640, "height": 360},
            model={"name": "bk-detector", "version": "0.0.1"},
            media=[
                {
                    "kind": "snapshot_clean",
                    "content_type": "image/jpeg",
                    "sha256": media.sha256,
                    "size_bytes": len(blob),
                }
            ],
        )
        for topic, msg in (
            (camera_topic("r-a", camera, "event"), event),
            (camera_topic("r-a", camera, "media"), media),
        ):
            info = client.publish(topic, encode(msg), qos=1)
            info.wait_for_publish(10)
        alerts.append(
            {
                "id": event_id,
                "camera": camera,
                "image": blob,
                "detections": detections,
                "verdict": "confirmed" if i % 2 == 0 else "false_positive",
            }
        )
    client.loop_stop()
    client.disconnect()
    return alerts


def check_export(out: Path, alerts: list[dict[str, Any]]) -> None:
    """The dataset files are exactly what the verdicts call for."""
    assert (out / "data.yaml").exists() and (out / "DATASHEET.md").exists()
    splits = {}
    expected_boxes = 0
    for a in alerts:
        (image,) = list(out.glob(f"images/*/*{a['id'].hex}.jpg"))
        assert image.read_bytes() == a["image"]
        split = image.parent.name
        splits.setdefault(a["camera"], set()).add(split)
        boxes = a["detections"]
        if a["verdict"] == "false_positive":  # board_misuse blames the food: removed, image kept as negative
            boxes = [
                d for d in boxes if d["label"] not in ("raw_meat", "raw_seafood", "vegetable", "cooked_food")
            ]
        expected_boxes += len(boxes)
        assert (out / "labels" / split / f"{image.stem}.txt").read_text() == _yolo(boxes), a["verdict"]
    assert all(len(s) == 1 for s in splits.values()), f"a camera's scenes in both splits: {splits}"
    assert splits["cam1"] != splits["cam2"], "two groups: one in train, one in val"
    sheet = json.loads((out / "datasheet.json").read_text())
    assert sheet["images"]["total"] == 4 and sheet["hard_negatives"] == 2
    coco = json.loads((out / "coco" / "annotations.json").read_text())
    assert len(coco["images"]) == 4 and len(coco["annotations"]) == expected_boxes
    tasks = json.loads((out / "label_studio" / "tasks.json").read_text())
    assert sum(len(t["predictions"][0]["result"]) for t in tasks) == expected_boxes


def tar_gz(folder: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    return buf.getvalue()


def start_agent(services: dict[str, Any], model: Path, clip: Path) -> subprocess.Popen:
    tmp = services["tmp"]
    cfg = {
        "agent": {"id": "box-1", "restaurant": "r-a"},
        "mqtt": {
            "port": services["mqtt_port"],
            "username": "r-a",
            "password_file": str(services["auth"].credentials_dir / "r-a.txt"),
            "stats_interval_s": 1,
            "reconnect_min_s": 0.5,
            "reconnect_max_s": 2,
        },
        "model": {"path": str(model), "threads": 1, "download_dir": str(tmp / "edge-models")},
        "outbox": {"path": str(tmp / "outbox.sqlite")},
        "motion": {"enabled": False},
        "cameras": [{"id": "cam1", "source": str(clip), "fps": 2, "loop": True, "rules": []}],
    }
    path = tmp / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg))
    log = (tmp / "edge.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "brightkitchen", "edge", "run", "--config", str(path)],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    services["procs"].append(proc)
    return proc


def agent_model(services: dict[str, Any]) -> str | None:
    for a in services["ml"].get("/api/v1/health").json()["agents"]:
        if (a["restaurant"], a["agent"]) == ("r-a", "box-1") and a["status"] == "online":
            return a["model_version"]
    return None


def rollout(services: dict[str, Any], model_id: int) -> dict[str, Any]:
    r = services["ml"].post(f"/api/v1/models/{model_id}/rollouts", json={"agents": ["r-a/box-1"]})
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    return wait_until(
        lambda: (
            (s := services["ml"].get(f"/api/v1/rollouts/{rid}").json())["state"] in ("done", "failed") and s
        ),
        60,
        f"rollout {rid} to finish",
    )


def test_reviewed_alerts_to_a_new_model_on_the_edge(services: dict[str, Any], make_model_folder) -> None:
    tmp, ml, insp, listener = services["tmp"], services["ml"], services["insp"], services["listener"]
    t0 = time.monotonic()
    # 1. Alerts from the kitchen, reviewed by an inspector: two confirmed, two false positives.
    cli(
        "train",
        "synth",
        "--out",
        str(tmp / "kitchen"),
        "--images",
        "4",
        "--seed",
        "777",
        "--val-fraction",
        "0",
    )
    r_a_password = (services["auth"].credentials_dir / "r-a.txt").read_text().strip()
    alerts = publish_alerts(services["mqtt_port"], r_a_password, tmp / "kitchen")
    wait_until(
        lambda: len(insp.get("/api/v1/alerts", params={"status": "all"}).json()["items"]) == 4, 30, "ingest"
    )
    for a in alerts:
        body = {"verdict": a["verdict"], "reason": "" if a["verdict"] == "confirmed" else "a shadow, no food"}
        assert insp.post(f"/api/v1/alerts/{a['id']}/review", json=body).status_code == 200

    # 2. Export, and check every file.
    export = tmp / "export"
    cli(
        "dashboard",
        "export-dataset",
        "--config",
        str(services["config"]),
        "--out",
        str(export),
        "--group-by",
        "camera",
    )
    check_export(export, alerts)

    # 3. A tiny training run on synthetic + exported data, a candidate, compared with the baseline.
    baseline = make_model_folder(name="bk-detector", version="0.0.1")
    cli("train", "synth", "--out", str(tmp / "synth"), "--images", "12", "--seed", "4242")
    cli(
        "train",
        "synth",
        "--out",
        str(tmp / "bench"),
        "--images",
        "4",
        "--seed",
        "9001",
        "--val-fraction",
        "0",
    )
    run = tmp / "run"
    cli(
        "train",
        "fit",
        "--data",
        str(tmp / "synth"),
        "--real",
        str(export),
        "--out",
        str(run),
        "--epochs",
        "1",
        "--imgsz",
        "160",
        "--batch",
        "4",
        "--workers",
        "0",
    )
    candidate = tmp / "models" / "bk-detector-0.1.0"
    cli(
        "train",
        "export",
        "--weights",
        str(run / "weights" / "best.pt"),
        "--out",
        str(candidate),
        "--name",
        "bk-detector",
        "--version",
        "0.1.0",
        "--width",
        "160",
        "--height",
        "96",
    )
    report = tmp / "report"
    cli(
        "train",
        "compare",
        "--candidate",
        str(candidate),
        "--baseline",
        str(baseline),
        "--data",
        str(tmp / "bench"),
        "--out",
        str(report),
        ok=(0, 1),
    )
    verdict = json.loads((report / "report.json").read_text())["verdict"]
    trained_s = time.monotonic() - t0

    # 4. The registry: a tampered archive is refused, the candidate is accepted with its report.
    tampered = tmp / "tampered" / "bk-detector-0.1.0"
    shutil.copytree(candidate, tampered)
    (tampered / "model.onnx").write_bytes((tampered / "model.onnx").read_bytes()[:-1] + b"\x00")
    bad = ml.post("/api/v1/models", files={"archive": ("m.tar.gz", tar_gz(tampered))})
    assert bad.status_code == 422 and "sha256" in bad.json()["detail"]
    files = {
        "archive": ("bk-detector-0.1.0.tar.gz", tar_gz(candidate)),
        "report_md": ("report.md", (report / "report.md").read_bytes()),
        "report_json": ("report.json", (report / "report.json").read_bytes()),
    }
    up = ml.post("/api/v1/models", files=files)
    assert up.status_code == 201, up.text
    model_id = up.json()["id"]
    assert up.json()["report"]["verdict"] == verdict
    assert up.json()["card"]["sha256"] == ModelCard.read(candidate).sha256

    # 5. An edge agent on the baseline; the rollout reaches it through the command topic.
    clip = tmp / "clip.mp4"
    frames = [cv2.imread(str(p)) for p in sorted((tmp / "bench" / "images").rglob("*.jpg"))]
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 4, (640, 360))
    for frame in frames * 4:
        writer.write(frame)
    writer.release()
    start_agent(services, baseline, clip)
    wait_until(lambda: agent_model(services) == "0.0.1", 60, "the agent online on the baseline")
    done = rollout(services, model_id)
    assert done["state"] == "done", done
    assert (
        done["targets"][0]["state"] == "running"
        and "switched to bk-detector-0.1.0" in done["targets"][0]["message"]
    )
    (reply,) = [r for r in listener.of("reply") if r.ok]
    assert reply.model.version == "0.1.0" and reply.model.sha256 == ModelCard.read(candidate).sha256
    assert any(a.model and a.model.version == "0.1.0" for a in listener.of("availability"))
    assert any(s.model and s.model.version == "0.1.0" for s in listener.of("stats"))
    assert agent_model(services) == "0.1.0"
    assert ml.get(f"/api/v1/models/{model_id}").json()["agents"] == ["r-a/box-1"]

    # 6. An archive corrupted in the store after upload: the agent refuses it and keeps 0.1.0.
    copy = tmp / "models" / "bk-detector-0.1.1"
    shutil.copytree(candidate, copy)
    card = json.loads((copy / "card.json").read_text())
    (copy / "card.json").write_text(json.dumps({**card, "version": "0.1.1"}))
    second = ml.post("/api/v1/models", files={"archive": ("m.tar.gz", tar_gz(copy))}).json()
    stored = next((services["media"] / "models" / "bk-detector" / "0.1.1").glob("*.tar.gz"))
    stored.write_bytes(stored.read_bytes()[:-10] + os.urandom(10))
    failed = rollout(services, second["id"])
    assert failed["state"] == "failed" and failed["targets"][0]["state"] == "failed", failed
    assert "sha256 of the download" in failed["message"]
    refusal = [r for r in listener.of("reply") if not r.ok]
    assert len(refusal) == 1 and refusal[0].model.version == "0.1.0"
    stats_after = len(listener.of("stats"))
    wait_until(lambda: len(listener.of("stats")) > stats_after + 1, 10, "more stats")
    assert listener.of("stats")[-1].model.version == "0.1.0" and agent_model(services) == "0.1.0"
    print(f"retraining loop: training steps {trained_s:.0f} s, total {time.monotonic() - t0:.0f} s")
