"""Inspectors' verdicts on alerts (confirmed / false positive / unclear), audited."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from dashboard.admin import audit
from dashboard.models import Review, User, now_utc
from dashboard.web.auth import ApiUser, Csrf, Db, PageUser, Principal, require_roles
from dashboard.web.routers.alerts import AlertDetail, alert_detail
from dashboard.web.scope import visible_event

router = APIRouter()
Verdict = Literal["confirmed", "false_positive", "unclear"]


class ReviewIn(BaseModel):
    verdict: Verdict
    reason: str = Field("", max_length=2000, description="why; required for false_positive and unclear")


def record_review(db: Session, principal: Principal, event_id: str, body: ReviewIn) -> None:
    """Store a verdict (the latest one counts) and audit it."""
    require_roles(principal, "admin", "inspector")
    event = visible_event(db, principal.user, event_id)
    if body.verdict != "confirmed" and not body.reason.strip():
        raise HTTPException(422, f"a reason is required for the verdict {body.verdict}")
    user: User = principal.user
    now = now_utc()
    db.add(
        Review(
            event_id=event.id,
            user_id=user.id,
            verdict=body.verdict,
            reason=body.reason.strip(),
            created_at=now,
        )
    )
    previous = event.verdict
    event.verdict, event.reviewed_at = body.verdict, now
    audit(
        db,
        user.id,
        "review",
        "event",
        str(event.id),
        verdict=body.verdict,
        reason=body.reason.strip(),
        previous=previous,
        via=principal.via,
    )
    db.commit()


@router.post("/alerts/{event_id}/review", include_in_schema=False, dependencies=[Csrf])
def review_form(
    request: Request,
    event_id: str,
    principal: PageUser,
    db: Db,
    verdict: Annotated[Verdict, Form()],
    reason: Annotated[str, Form(max_length=2000)] = "",
    next_id: Annotated[str, Form()] = "",
) -> RedirectResponse:
    record_review(db, principal, event_id, ReviewIn(verdict=verdict, reason=reason))
    target = f"/alerts/{next_id}" if next_id else f"/alerts/{event_id}"
    return RedirectResponse(target, status_code=303)


@router.post("/api/v1/alerts/{event_id}/review", tags=["alerts"], dependencies=[Csrf])
def review_api(event_id: str, body: ReviewIn, principal: ApiUser, db: Db) -> AlertDetail:
    """Give a verdict on an alert (inspectors and admins)."""
    record_review(db, principal, event_id, body)
    return alert_detail(db, principal.user, event_id)
