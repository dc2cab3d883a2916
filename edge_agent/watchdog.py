"""Automatic rollback: a model that fails on frames right after a switch goes back to the one before.

After every ``switch_model`` the watchdog is armed for ``window_s`` seconds. If the cameras report
``max_errors`` processing failures (inference exceptions, a pipeline that throws) within that window, it
rolls the detector slot back and tells the agent, which replies to the switch command again with
``ok=false`` and announces the old model. A model that fails to load never gets this far: the switch
itself fails and the old model stays (``DetectorSlot.switch``).

Example::

    dog = RollbackWatchdog(slot, max_errors=5, window_s=120, on_rollback=report)
    dog.arm(command_id)          # after a successful switch
    dog.error("processing failed: ...")   # from a camera thread
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from edge_agent.detector import DetectorSlot, ModelLoadError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AutoRollback:
    """What happened: the switch command it undoes, the models involved and why."""

    command_id: UUID
    failed_model: str
    restored_model: str
    reason: str


class RollbackWatchdog:
    """Counts camera processing errors after a switch; thread-safe."""

    def __init__(
        self,
        detectors: DetectorSlot,
        max_errors: int,
        window_s: float,
        on_rollback: Callable[[AutoRollback], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.detectors = detectors
        self.max_errors = max_errors
        self.window_s = window_s
        self.on_rollback = on_rollback
        self.clock = clock
        self._lock = threading.Lock()
        self._armed: tuple[UUID, float] | None = None  # (switch command, switched at)
        self._errors = 0

    def arm(self, command_id: UUID) -> None:
        """Start watching the model that ``command_id`` switched to."""
        with self._lock:
            self._armed, self._errors = (command_id, self.clock()), 0

    def disarm(self) -> None:
        """Stop watching (a manual rollback or another switch supersedes the armed one)."""
        with self._lock:
            self._armed, self._errors = None, 0

    def error(self, detail: str) -> None:
        """A camera failed to process a frame; rolls back when this is the ``max_errors``-th in the window."""
        with self._lock:
            if self._armed is None:
                return
            command_id, since = self._armed
            elapsed = self.clock() - since
            if elapsed > self.window_s:
                self._armed = None
                return
            self._errors += 1
            if self._errors < self.max_errors:
                return
            self._armed = None
            failed = self.detectors.current.card.ref
            try:
                restored = self.detectors.rollback().card.ref
            except ModelLoadError as exc:
                log.error("model %s keeps failing but cannot roll back: %s", failed, exc)
                return
        reason = (
            f"{self.max_errors} processing errors within {elapsed:.1f} s of switching to {failed} "
            f"(last: {detail[:300]})"
        )
        log.error("automatic rollback to %s: %s", restored, reason)
        self.on_rollback(AutoRollback(command_id, failed, restored, reason))
