"""Messages the ingest refused, with their reason codes (admins only)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import select

from dashboard.models import DeadLetter
from dashboard.web.auth import ApiUser, Db, require_roles

router = APIRouter()


class DeadLetterOut(BaseModel):
    id: int
    received_at: datetime
    topic: str
    reason: str
    detail: str
    payload_size: int
    payload_head: str


@router.get("/api/v1/dead-letters", tags=["ingest"])
def dead_letters(
    principal: ApiUser,
    db: Db,
    reason: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> list[DeadLetterOut]:
    """The newest refused messages; ``payload_head`` is the first bytes, decoded leniently."""
    require_roles(principal, "admin")
    q = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
    if reason:
        q = q.where(DeadLetter.reason == reason)
    return [
        DeadLetterOut(
            id=d.id,
            received_at=d.received_at,
            topic=d.topic,
            reason=d.reason,
            detail=d.detail,
            payload_size=d.payload_size,
            payload_head=d.payload_head[:1024].decode("utf-8", "replace"),
        )
        for d in db.scalars(q)
    ]
