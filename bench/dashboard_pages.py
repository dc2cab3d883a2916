"""Page latency with a big database: review queue, alert page, API list and statistics at 100,000 alerts.

Fills a fresh database (SQLite file or a PostgreSQL schema) with N alerts over 60 restaurants in 6
districts, a third of them reviewed, then times requests through the full app (in-process ASGI client,
so the figures are the server's time without network).

    .venv/bin/python bench/dashboard_pages.py --db sqlite --alerts 100000
    .venv/bin/python bench/dashboard_pages.py --db postgres --alerts 100000
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine, insert, text

from brightkitchen.contract import utc_now
from dashboard import admin
from dashboard.config import DashboardConfig
from dashboard.db import open_database
from dashboard.models import Camera, Event

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
RULES = ("board_misuse", "stacked_containers")
SEVERITIES = ("low", "medium", "high", "critical")


def fill(sessions, n: int) -> None:
    rng = random.Random(7)
    with sessions.begin() as s:
        for r in range(60):
            admin.create_restaurant(s, f"r-{r:03d}", f"Restaurant {r}", f"District {r % 6}")
            for c in range(3):
                admin.create_camera(s, f"r-{r:03d}", f"cam-{c}")
        admin.create_user(s, "admin", "bench-password", "admin")
        admin.create_user(s, "insp", "bench-password", "inspector", districts=["District 1"])
    with sessions() as s:
        cams = [(c.id, c.restaurant_id) for c in s.query(Camera)]
    now = utc_now()
    rows = []
    for _ in range(n):
        cam_pk, rid = rng.choice(cams)
        started = now - timedelta(seconds=rng.uniform(0, 90 * 86400))
        reviewed = rng.random() < 0.33
        rows.append(
            {
                "id": uuid.uuid4(),
                "restaurant_id": rid,
                "camera_pk": cam_pk,
                "agent_id": "box-1",
                "seq": 2,
                "phase": "end",
                "rule": rng.choice(RULES),
                "rule_name": None,
                "severity": rng.choice(SEVERITIES),
                "started_at": started,
                "ended_at": started + timedelta(seconds=30),
                "sent_at": started,
                "score": rng.uniform(0.3, 1.0),
                "detections": [
                    {"label": "raw_meat", "score": 0.8, "box": {"x1": 0.1, "y1": 0.1, "x2": 0.3, "y2": 0.3}}
                ],
                "details": {"board_colour": "green"},
                "frame_width": 1280,
                "frame_height": 720,
                "model_name": "bk",
                "model_version": rng.choice(("1.0.0", "1.1.0")),
                "media_refs": [],
                "received_at": started,
                "updated_at": started,
                "verdict": rng.choice(("confirmed", "false_positive", "unclear")) if reviewed else None,
                "reviewed_at": started + timedelta(minutes=rng.uniform(1, 600)) if reviewed else None,
                "responded_at": None,
            }
        )
        if len(rows) == 5000:
            with sessions.begin() as s:
                s.execute(insert(Event), rows)
            rows = []
    if rows:
        with sessions.begin() as s:
            s.execute(insert(Event), rows)


def timeit(client, path: str, repeat: int) -> tuple[float, float]:
    client.get(path)  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = client.get(path)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--alerts", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=40)
    args = ap.parse_args()
    from fastapi.testclient import TestClient

    from dashboard.web.app import create_app

    tmp = Path(tempfile.mkdtemp(prefix="bk-bench-"))
    schema = f"bk_bench_{uuid.uuid4().hex[:8]}"
    data = {
        "database_url": f"sqlite:///{tmp}/bench.db" if args.db == "sqlite" else PG_URL,
        "secret_key_file": str(tmp / "key"),
        "media": {"path": str(tmp / "media")},
        "http": {"secure_cookies": False},
    }
    if args.db == "postgres":
        data["database_schema"] = schema
    cfg = DashboardConfig.model_validate(data)
    engine, sessions = open_database(cfg)
    try:
        t = time.perf_counter()
        fill(sessions, args.alerts)
        if args.db == "postgres":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        print(f"filled {args.alerts} alerts in {time.perf_counter() - t:.0f} s")
        with sessions() as s:
            some = str(s.query(Event.id).filter(Event.restaurant_id == "r-001").first()[0])
        app = create_app(cfg, sessions=sessions)
        for user in ("admin", "insp"):
            client = TestClient(app)
            token = client.get("/login").text.split('name="csrf-token" content="')[1].split('"')[0]
            client.post("/login", data={"username": user, "password": "bench-password", "csrf_token": token})
            for path in (
                "/queue",
                "/queue?status=unreviewed",
                "/queue?rule=board_misuse&severity=high",
                f"/alerts/{some}",
                "/api/v1/alerts",
                "/stats",
            ):
                p50, p95 = timeit(client, path, args.repeat)
                print(
                    f"db={args.db} alerts={args.alerts} user={user:5} {path:42} "
                    f"p50 {p50:6.1f} ms  p95 {p95:6.1f} ms"
                )
    finally:
        engine.dispose()
        if args.db == "postgres":
            with create_engine(PG_URL).begin() as conn:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))


if __name__ == "__main__":
    main()
