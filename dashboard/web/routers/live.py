"""New alerts, live: a Server-Sent Events stream of alerts the user may see, polled from the database
(so it works with ingest workers in other processes)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from dashboard.models import Event, now_utc
from dashboard.web.auth import ApiUser
from dashboard.web.routers.alerts import AlertFilter, alert_select, summaries

router = APIRouter()
KEEPALIVE_S = 15.0
OVERLAP = timedelta(seconds=5)


@router.get("/api/v1/live", tags=["alerts"], response_class=StreamingResponse)
def live(request: Request, principal: ApiUser) -> StreamingResponse:
    """``text/event-stream``: an ``alert`` event (JSON summary) for each new alert from now on."""
    sessions = request.app.state.sessions
    poll_s = request.app.state.cfg.http.sse_poll_s
    user = principal.user

    def fetch(since: datetime) -> list[tuple[uuid.UUID, str, datetime]]:
        with sessions() as db:
            # Look a little back: a slower worker may commit an alert stamped before the newest one seen.
            q = alert_select(user, AlertFilter(), Event.received_at > since - OVERLAP)
            rows = list(db.execute(q.order_by(None).order_by(Event.received_at).limit(100)))
            return [(s.id, s.model_dump_json(), s.received_at) for s in summaries(db, rows)]

    async def stream() -> AsyncIterator[str]:
        since = now_utc()
        sent: deque[uuid.UUID] = deque(maxlen=1000)
        last_sent = time.monotonic()
        yield "retry: 3000\n\n"
        while not await request.is_disconnected():
            items = await to_thread.run_sync(fetch, since)
            items = [i for i in items if i[0] not in sent]
            for eid, item, received_at in items:
                sent.append(eid)
                yield f"event: alert\ndata: {item}\n\n"
                since = max(since, received_at)
            if items:
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent > KEEPALIVE_S:
                yield ": keepalive\n\n"
                last_sent = time.monotonic()
            await asyncio.sleep(poll_s)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
