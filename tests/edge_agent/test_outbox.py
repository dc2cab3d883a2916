"""The SQLite outbox: order, stable ids, eviction policy, and rows that survive SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from edge_agent.outbox import Outbox


def test_rows_come_out_in_order_and_leave_on_ack(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 10_000)
    for i in range(5):
        assert ob.put(f"event:{i}", "event", "t", b"x" * 10)
    rows = ob.pending(3)
    assert [r.msg_id for r in rows] == ["event:0", "event:1", "event:2"]
    assert [r.msg_id for r in ob.pending(3, exclude={rows[0].id, rows[1].id})] == [
        "event:2",
        "event:3",
        "event:4",
    ]
    ob.ack(rows[0].id)
    assert ob.depth() == (4, 40)


def test_same_msg_id_is_stored_once(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 10_000)
    assert ob.put("media:e1:clip", "clip", "t", b"abc")
    assert not ob.put("media:e1:clip", "clip", "t", b"abc")
    assert ob.depth() == (1, 3)


def test_eviction_takes_clips_first_then_snapshots_never_events(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 1000)
    ob.put("event:1", "event", "t", b"e" * 100)
    ob.put("media:1:snapshot", "snapshot", "t", b"s" * 200)
    ob.put("media:1:clip", "clip", "t", b"c" * 300)
    ob.put("media:2:clip", "clip", "t", b"c" * 300)
    ob.put("event:2", "event", "t", b"e" * 200)  # 1100 > 1000: the oldest clip goes
    assert [r.msg_id for r in ob.pending(10)] == ["event:1", "media:1:snapshot", "media:2:clip", "event:2"]
    ob.put("media:3:snapshot", "snapshot", "t", b"s" * 400)  # the other clip goes; that is enough
    assert [r.msg_id for r in ob.pending(10)] == [
        "event:1",
        "media:1:snapshot",
        "event:2",
        "media:3:snapshot",
    ]
    for i in range(3, 10):
        ob.put(f"event:{i}", "event", "t", b"e" * 200)
    kinds = [r.kind for r in ob.pending(20)]
    assert kinds.count("event") == 9 and "snapshot" not in kinds, "events are kept even over budget"
    assert ob.evicted == 4


def test_row_bigger_than_the_budget_is_refused(tmp_path: Path) -> None:
    ob = Outbox(tmp_path / "o.sqlite", 100)
    assert not ob.put("media:1:clip", "clip", "t", b"c" * 101)
    assert ob.depth() == (0, 0)


def test_rows_survive_sigkill_and_reopen_in_order(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite"
    code = textwrap.dedent(
        f"""
        import sys, time
        from edge_agent.outbox import Outbox
        ob = Outbox({str(path)!r}, 10**9)
        for i in range(200):
            ob.put(f"event:{{i}}", "event", "t", b"payload %d" % i)
        print("written", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "written"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    t0 = time.monotonic()
    ob = Outbox(path, 10**9)
    rows = ob.pending(1000)
    assert [r.msg_id for r in rows] == [f"event:{i}" for i in range(200)]
    assert rows[-1].payload == b"payload 199"
    assert time.monotonic() - t0 < 5
