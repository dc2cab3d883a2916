"""The README's demo: real alerts from the bundled clip reach the dashboard within a minute."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
DEADLINE_S = 60.0


def _rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # tables not created yet
        return []


def test_demo_shows_real_alerts_within_a_minute(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    started = time.monotonic()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "brightkitchen",
            "demo",
            "run",
            "--workdir",
            str(workdir),
            "--duration",
            "150",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # as from `make demo &` in a script: the shell starts background jobs with SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    db = workdir / "dashboard.db"
    first_alert_s = None
    try:
        while time.monotonic() - started < DEADLINE_S + 60:
            assert proc.poll() is None, proc.stdout.read()
            rules = {r for (r,) in _rows(db, "select rule from events")}
            if rules and first_alert_s is None:
                first_alert_s = time.monotonic() - started
            media = {k for (k,) in _rows(db, "select kind from media")}
            if rules >= {"board_misuse", "stacked_containers"} and {"snapshot", "clip"} <= media:
                break
            time.sleep(1)
        assert first_alert_s is not None and first_alert_s <= DEADLINE_S, (
            f"first alert after {first_alert_s} s"
        )
        assert rules >= {"board_misuse", "stacked_containers"}, (
            f"only {rules} after {time.monotonic() - started:.0f} s"
        )
        assert {"snapshot", "clip"} <= media
        # Every stored event came from the demo's agent: nothing pre-seeded.
        assert _rows(db, "select distinct agent_id from events") == [("demo-box",)]
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    assert "inspector login" in out
