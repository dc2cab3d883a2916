"""Ingest throughput: events/s through a real Mosquitto into the database, each with a 100 KB snapshot.

Starts its own Mosquitto on a free port, N ingest worker processes (`brightkitchen dashboard ingest`,
one shared-subscription group), publishes E events + E snapshots at QoS 1, and times until all are stored.

Two modes:
- live (default): the publisher runs while the workers store; on one box they share its cores.
- ``--backlog``: the workers subscribe and stop, everything is published into their persistent sessions,
  then the workers start again and drain it: the ingest's own rate, as after an outage, without the
  publisher (in a city, the edge agents) competing for the same two cores.

    .venv/bin/python bench/dashboard_ingest.py --db sqlite --workers 1 --events 2000
    .venv/bin/python bench/dashboard_ingest.py --db postgres --workers 2 --events 2000 --backlog
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from brightkitchen.contract import AvailabilityMessage, EventMessage, MediaMessage, encode, topic_for, utc_now
from dashboard import admin
from dashboard.config import DashboardConfig
from dashboard.db import open_database
from dashboard.models import Agent, Event, Media

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(folder: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nuser root\npersistence false\n"
        "max_queued_messages 1000000\nmax_queued_bytes 0\nmax_inflight_messages 1000\n"
    )
    proc = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("mosquitto did not start")


def messages(n: int, snapshot_bytes: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        blob = b"\xff\xd8\xff\xe0" + os.urandom(snapshot_bytes - 6) + b"\xff\xd9"
        sha = hashlib.sha256(blob).hexdigest()
        now = utc_now()
        ev = EventMessage(
            event_id=uuid.uuid4(),
            seq=0,
            phase="new",
            restaurant="r-bench",
            camera=f"cam-{i % 4}",
            agent="box-1",
            rule="board_misuse",
            severity="high",
            started_at=now - timedelta(seconds=5),
            sent_at=now,
            score=0.8,
            detections=[
                {"label": "raw_meat", "score": 0.8, "box": {"x1": 0.1, "y1": 0.1, "x2": 0.3, "y2": 0.3}}
            ],
            frame={"width": 1280, "height": 720},
            model={"name": "bk", "version": "1.0.0"},
            media=[
                {"kind": "snapshot", "content_type": "image/jpeg", "sha256": sha, "size_bytes": len(blob)}
            ],
        )
        media = MediaMessage.from_bytes(
            blob,
            event_id=ev.event_id,
            restaurant="r-bench",
            camera=ev.camera,
            kind="snapshot",
            content_type="image/jpeg",
            captured_at=now,
        )
        out += [(topic_for(ev), encode(ev)), (topic_for(media), encode(media))]
    return out


def wait_subscribed(pub: mqtt.Client, sessions: sessionmaker[Session]) -> None:
    """Publish a probe until a worker stores it, then give the others a moment to subscribe too."""
    probe = AvailabilityMessage(restaurant="r-bench", agent="probe", status="online", at=utc_now())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pub.publish(topic_for(probe), encode(probe), qos=1).wait_for_publish(10)
        time.sleep(0.5)
        with sessions() as s:
            if s.scalar(select(Agent).where(Agent.agent_id == "probe")) is not None:
                time.sleep(2.0)
                return
    raise SystemExit("no ingest worker subscribed within 120 s")


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        w.terminate()
    for w in workers:
        w.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--snapshot-kb", type=int, default=100)
    ap.add_argument(
        "--backlog", action="store_true", help="publish with the workers stopped, then time the drain"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bk-bench-"))
    schema = f"bk_bench_{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp}/bench.db" if args.db == "sqlite" else PG_URL
    cfg_data = {
        "database_url": url,
        "secret_key_file": str(tmp / "key"),
        "media": {"path": str(tmp / "media")},
    }
    if args.db == "postgres":
        cfg_data["database_schema"] = schema
    engine, sessions = open_database(DashboardConfig.model_validate(cfg_data))
    with sessions.begin() as s:
        admin.create_restaurant(s, "r-bench", "Bench", "Bench")
        for i in range(4):
            admin.create_camera(s, "r-bench", f"cam-{i}")
    broker, port = start_broker(tmp)
    cfg_file = tmp / "dashboard.yaml"
    import yaml

    cfg_file.write_text(yaml.safe_dump({**cfg_data, "mqtt": {"port": port, "share_group": "bench"}}))

    def start_workers() -> list[subprocess.Popen[bytes]]:
        argv = [sys.executable, "-m", "brightkitchen", "--log-level", "WARNING", "dashboard", "ingest"]
        return [
            subprocess.Popen([*argv, "--config", str(cfg_file), "--client-id", f"bench-{i}"])
            for i in range(args.workers)
        ]

    def stored() -> int:
        with sessions() as s:
            n_ev = s.scalar(select(func.count()).select_from(Event)) or 0
            n_media = s.scalar(select(func.count()).select_from(Media)) or 0
        return min(n_ev, n_media)  # events stored with their snapshot

    workers = start_workers()
    try:
        print(f"preparing {args.events} events with {args.snapshot_kb} KB snapshots ...", flush=True)
        msgs = messages(args.events, args.snapshot_kb * 1024)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-pub", protocol=mqtt.MQTTv5)
        pub.max_inflight_messages_set(200)
        pub.max_queued_messages_set(0)
        pub.connect("127.0.0.1", port)
        pub.loop_start()
        wait_subscribed(pub, sessions)
        if args.backlog:
            stop_workers(workers)  # their sessions (and shared subscriptions) stay on the broker
        t0 = time.perf_counter()
        infos = [pub.publish(t, p, qos=1) for t, p in msgs]
        for info in infos:
            info.wait_for_publish(120)
        t_pub = time.perf_counter() - t0
        pub.disconnect()
        if args.backlog:
            workers = start_workers()
            started = time.monotonic()
            while stored() == 0:  # worker start-up (imports, connect) is not the ingest's rate
                if time.monotonic() - started > 120:
                    raise SystemExit("the restarted workers stored nothing within 120 s")
                time.sleep(0.01)
            t0 = time.perf_counter()
        while (done := stored()) < args.events:
            if time.perf_counter() - t0 > 600:
                raise SystemExit(f"timeout: {done} of {args.events} events stored with their media")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
        mode = "backlog drain" if args.backlog else "live"
        print(
            f"db={args.db} workers={args.workers} events={args.events} snapshot={args.snapshot_kb} KB "
            f"{mode}: published in {t_pub:.1f} s, stored in {elapsed:.1f} s -> "
            f"{args.events / elapsed:.0f} events/s ({2 * args.events / elapsed:.0f} messages/s)"
        )
    finally:
        stop_workers(workers)
        broker.terminate()
        engine.dispose()
        if args.db == "postgres":
            with create_engine(PG_URL).begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
