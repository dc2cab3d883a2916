"""New alerts, live: a Server-Sent Events stream of alerts the user may see.

Alerts are found in the database (so the stream works with ingest workers in other processes), but not
by every stream on its own: one ``AlertWatch`` per web process polls for alert ids it has not seen yet and
wakes the streams, which then run their own scoped query. Idle, the database sees one small indexed query
per ``http.sse_poll_s`` per process, however many browsers follow the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dashboard.models import Event, now_utc
from dashboard.web.auth import ApiUser
from dashboard.web.routers.alerts import AlertFilter, alert_select, summaries

log = logging.getLogger(__name__)
router = APIRouter()
KEEPALIVE_S = 15.0
# Look a little back: a slower worker may commit an alert stamped before the newest one seen.
OVERLAP = timedelta(seconds=5)


class AlertWatch:
    """Counts the arrivals of new alerts (any restaurant) for the streams of one web process.

    It polls only while at least one stream is ``listening``; ``wait`` returns once ``version`` passed
    the caller's, or after a timeout.
    """

    def __init__(self, sessions: sessionmaker[Session], poll_s: float) -> None:
        self.sessions = sessions
        self.poll_s = poll_s
        self.version = 0
        self.polls = 0
        self._since = now_utc()
        self._seen: dict[uuid.UUID, datetime] = {}
        self._changed: asyncio.Condition | None = None
        self._task: asyncio.Task[None] | None = None
        self._listeners = 0

    def _arrivals(self) -> list[tuple[uuid.UUID, datetime]]:
        with self.sessions() as db:
            q = select(Event.id, Event.received_at).where(Event.received_at > self._since - OVERLAP)
            return [(row.id, row.received_at) for row in db.execute(q)]

    async def _poll(self) -> None:
        changed = self._changed
        assert changed is not None
        while True:
            self.polls += 1
            try:
                rows = await to_thread.run_sync(self._arrivals)
            except Exception:  # a database restart must not end the live streams
                log.exception("live stream: polling for new alerts failed; trying again")
                rows = []
            fresh = [(eid, at) for eid, at in rows if eid not in self._seen]
            if fresh:
                self._seen.update(fresh)
                self._since = max(self._since, *(at for _, at in fresh))
                self._seen = {e: at for e, at in self._seen.items() if at > self._since - OVERLAP}
                async with changed:
                    self.version += 1
                    changed.notify_all()
            await asyncio.sleep(self.poll_s)

    @contextlib.asynccontextmanager
    async def listening(self) -> AsyncIterator[None]:
        """While a stream is open: the first one starts the polling, the last one to close stops it."""
        self._listeners += 1
        if self._task is None:  # streams fetch once when they open: what came while none listened is theirs
            self._since, self._seen = now_utc(), {}
            self._changed = asyncio.Condition()  # bound to this event loop (a test client may bring another)
            self._task = asyncio.create_task(self._poll(), name="live-alert-watch")
        try:
            yield
        finally:
            self._listeners -= 1
            if self._listeners == 0 and self._task is not None:
                self._task.cancel()
                self._task, self._changed = None, None

    async def wait(self, version: int, timeout: float) -> int:
        """The version once it is past ``version``, or the same one after ``timeout`` seconds."""
        changed = self._changed
        assert changed is not None, "wait() outside listening()"
        async with changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait_for(lambda: self.version > version), timeout)
            return self.version


@router.get("/api/v1/live", tags=["alerts"], response_class=StreamingResponse)
def live(request: Request, principal: ApiUser) -> StreamingResponse:
    """``text/event-stream``: an ``alert`` event (JSON summary) for each new alert from now on."""
    sessions = request.app.state.sessions
    watch: AlertWatch = request.app.state.alert_watch
    user = principal.user

    def fetch(since: datetime) -> list[tuple[uuid.UUID, str, datetime]]:
        with sessions() as db:
            q = alert_select(user, AlertFilter(), Event.received_at > since - OVERLAP)
            rows = list(db.execute(q.order_by(None).order_by(Event.received_at).limit(100)))
            return [(s.id, s.model_dump_json(), s.received_at) for s in summaries(db, rows)]

    async def stream() -> AsyncIterator[str]:
        since = now_utc()
        sent: deque[uuid.UUID] = deque(maxlen=1000)
        yield "retry: 3000\n\n"
        async with watch.listening():
            version, news = watch.version, True
            while not await request.is_disconnected():
                if not news:
                    yield ": keepalive\n\n"
                for eid, item, received_at in await to_thread.run_sync(fetch, since) if news else []:
                    if eid not in sent:
                        sent.append(eid)
                        yield f"event: alert\ndata: {item}\n\n"
                    since = max(since, received_at)
                newer = await watch.wait(version, KEEPALIVE_S)
                version, news = newer, newer != version

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
