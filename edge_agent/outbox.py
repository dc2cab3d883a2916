"""The disk-backed outbox (SQLite): every event, snapshot, clip and reply waits here until the broker acks it.

It survives a broker outage and an agent crash (WAL, ``synchronous=FULL``: a committed row outlives
SIGKILL and power loss) and hands rows out in insertion order. Delivery is at least once: a row is deleted
only after its PUBACK, so a crash between the two resends it, with the same stable ``msg_id`` (the
receiver dedupes by event id and seq, or by media sha256). Putting a ``msg_id`` twice stores it once.

Bounded disk: when a new row would take the outbox over ``max_bytes``, the oldest clips are evicted first,
then the oldest snapshots; events and replies are never evicted (they are small, and they are what an
inspector cannot do without). A row bigger than the whole budget is refused with a warning.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
KINDS = ("event", "snapshot", "clip", "control")
EVICTION_ORDER = ("clip", "snapshot")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    size_bytes INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, id);
"""


@dataclass(frozen=True)
class Row:
    id: int
    msg_id: str
    kind: str
    topic: str
    payload: bytes


class Outbox:
    """Thread-safe; one per agent process (SQLite's lock keeps a second process out of harm's way)."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self.evicted = 0
        depth, size = self.depth()
        if depth:
            log.info("outbox %s: %d messages (%d bytes) waiting from before", self.path, depth, size)

    def put(self, msg_id: str, kind: str, topic: str, payload: bytes) -> bool:
        """Store a message for delivery; False when it was already there or cannot fit at all."""
        if kind not in KINDS:
            raise ValueError(f"outbox kind {kind!r} is not one of {KINDS}")
        size = len(payload)
        if size > self.max_bytes:
            log.warning(
                "outbox: %s (%d bytes) is bigger than the whole budget %d; dropped",
                msg_id,
                size,
                self.max_bytes,
            )
            return False
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._make_room(size)
                cur = self._db.execute(
                    "INSERT OR IGNORE INTO outbox (msg_id, kind, topic, payload, size_bytes, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (msg_id, kind, topic, payload, size, time.time()),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return cur.rowcount == 1

    def _make_room(self, size: int) -> None:
        (used,) = self._db.execute("SELECT COALESCE(SUM(size_bytes), 0) FROM outbox").fetchone()
        for kind in EVICTION_ORDER:
            while used + size > self.max_bytes:
                row = self._db.execute(
                    "SELECT id, msg_id, size_bytes FROM outbox WHERE kind = ? ORDER BY id LIMIT 1", (kind,)
                ).fetchone()
                if row is None:
                    break
                self._db.execute("DELETE FROM outbox WHERE id = ?", (row[0],))
                used -= row[2]
                self.evicted += 1
                log.warning("outbox full (%d bytes budget): evicted %s %s", self.max_bytes, kind, row[1])
        if used + size > self.max_bytes:
            log.warning(
                "outbox over budget with events only (%d + %d > %d bytes); keeping them",
                used,
                size,
                self.max_bytes,
            )

    def pending(self, limit: int, exclude: set[int] | frozenset[int] = frozenset()) -> list[Row]:
        """The oldest rows not in ``exclude`` (those already handed out and in flight), in order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, msg_id, kind, topic, payload FROM outbox ORDER BY id LIMIT ?",
                (limit + len(exclude),),
            ).fetchall()
        return [Row(*r) for r in rows if r[0] not in exclude][:limit]

    def ack(self, row_id: int) -> None:
        """The broker has the message: forget it."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def depth(self) -> tuple[int, int]:
        """(messages, bytes) waiting."""
        with self._lock:
            count, size = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size_bytes), 0) FROM outbox"
            ).fetchone()
        return int(count), int(size)

    def close(self) -> None:
        with self._lock:
            self._db.close()
