"""Alerts: the inspectors' review queue, the restaurant portal, the alert page, and their API."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from dashboard.models import Camera, Event, Media, Response, Restaurant, Review, User
from dashboard.web.auth import ApiUser, Db, PageUser
from dashboard.web.scope import restaurant_filter, visible_event

router = APIRouter()
PAGE_SIZE = 50
Status = Literal["unreviewed", "all", "confirmed", "false_positive", "unclear", "unanswered"]


class AlertFilter(BaseModel):
    """Query parameters shared by the queue page and ``GET /api/v1/alerts``."""

    status: Status | None = None
    district: str | None = None
    restaurant: str | None = None
    camera: int | None = None
    rule: str | None = None
    severity: str | None = None
    since: date | None = None
    until: date | None = None
    tz: str | None = Field(None, description="time zone of since/until (default: the display time zone)")
    limit: int = Field(PAGE_SIZE, ge=1, le=500)
    offset: int = Field(0, ge=0)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        """Empty fields of an HTML filter form mean 'no filter'."""
        return None if value == "" else value


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        raise HTTPException(422, f"unknown time zone {name!r}") from None


def with_display_tz(request: Request, f: AlertFilter) -> AlertFilter:
    """Dates in filters mean days in the dashboard's display time zone unless ``tz`` says otherwise."""
    return f if f.tz else f.model_copy(update={"tz": request.app.state.cfg.http.display_timezone})


def alert_conditions(user: User, f: AlertFilter) -> list[ColumnElement[bool]]:
    """WHERE clauses on ``events`` alone (no joins, so counts and index scans stay cheap)."""
    conds = [restaurant_filter(user, Event.restaurant_id)]
    if f.status == "unreviewed":
        conds.append(Event.verdict.is_(None))
    elif f.status == "unanswered":
        conds.append(Event.responded_at.is_(None))
    elif f.status not in (None, "all"):
        conds.append(Event.verdict == f.status)
    if f.district:
        conds.append(Event.restaurant_id.in_(select(Restaurant.id).where(Restaurant.district == f.district)))
    if f.restaurant:
        conds.append(Event.restaurant_id == f.restaurant)
    if f.camera:
        conds.append(Event.camera_pk == f.camera)
    if f.rule:
        conds.append(Event.rule == f.rule)
    if f.severity:
        conds.append(Event.severity == f.severity)
    zone = _zone(f.tz)
    if f.since:
        conds.append(Event.started_at >= datetime.combine(f.since, time(), zone))
    if f.until:
        conds.append(Event.started_at < datetime.combine(f.until + timedelta(days=1), time(), zone))
    return conds


def alert_select(user: User, f: AlertFilter, *extra: ColumnElement[bool]) -> Select[Any]:
    """The scoped, filtered alerts with their restaurant and camera names, newest first."""
    return (
        select(Event, Restaurant.name, Restaurant.district, Camera.camera_id)
        .join(Restaurant, Event.restaurant_id == Restaurant.id)
        .join(Camera, Event.camera_pk == Camera.id)
        .where(*alert_conditions(user, f), *extra)
        .order_by(Event.started_at.desc())
    )


def _count(db: Session, conds: list[ColumnElement[bool]]) -> int:
    return db.scalar(select(func.count()).select_from(Event).where(*conds)) or 0


class MediaOut(BaseModel):
    id: str
    kind: str
    content_type: str
    url: str


class AlertSummary(BaseModel):
    id: uuid.UUID
    restaurant: str
    restaurant_name: str
    district: str
    camera: str
    camera_pk: int
    rule: str
    rule_name: str | None
    severity: str
    phase: str
    started_at: datetime
    ended_at: datetime | None
    received_at: datetime
    score: float
    model_version: str
    verdict: str | None
    reviewed_at: datetime | None
    responded_at: datetime | None
    thumbnail: MediaOut | None = None


class AlertPage(BaseModel):
    total: int
    items: list[AlertSummary]


def media_out(m: Media) -> MediaOut:
    return MediaOut(id=m.id, kind=m.kind, content_type=m.content_type, url=f"/media/{m.id}")


def summaries(db: Session, rows: list[Any]) -> list[AlertSummary]:
    """Rows of ``alert_select`` as summaries, each with its snapshot (if it has arrived)."""
    ids = [r[0].id for r in rows]
    thumbs: dict[uuid.UUID, Media] = {}
    if ids:
        for m in db.scalars(select(Media).where(Media.event_id.in_(ids), Media.kind.in_(("snapshot",)))):
            thumbs[m.event_id] = m
    out = []
    for ev, name, district, camera in rows:
        thumb = thumbs.get(ev.id)
        out.append(
            AlertSummary(
                id=ev.id,
                restaurant=ev.restaurant_id,
                restaurant_name=name,
                district=district,
                camera=camera,
                camera_pk=ev.camera_pk,
                rule=ev.rule,
                rule_name=ev.rule_name,
                severity=ev.severity,
                phase=ev.phase,
                started_at=ev.started_at,
                ended_at=ev.ended_at,
                received_at=ev.received_at,
                score=ev.score,
                model_version=ev.model_version,
                verdict=ev.verdict,
                reviewed_at=ev.reviewed_at,
                responded_at=ev.responded_at,
                thumbnail=media_out(thumb) if thumb else None,
            )
        )
    return out


def list_alerts(db: Session, user: User, f: AlertFilter) -> AlertPage:
    """One page of alerts. Without a status filter: unreviewed first (newest first), then reviewed —
    done as two index-friendly queries rather than one sort over every alert."""
    if f.status not in (None, "all"):
        rows = list(db.execute(alert_select(user, f).limit(f.limit).offset(f.offset)))
        return AlertPage(total=_count(db, alert_conditions(user, f)), items=summaries(db, rows))
    conds = alert_conditions(user, f)
    unreviewed = _count(db, [*conds, Event.verdict.is_(None)])
    rows = []
    if f.offset < unreviewed:
        q = alert_select(user, f, Event.verdict.is_(None)).limit(f.limit).offset(f.offset)
        rows = list(db.execute(q))
    if len(rows) < f.limit:
        q = alert_select(user, f, Event.verdict.is_not(None))
        rows += list(db.execute(q.limit(f.limit - len(rows)).offset(max(0, f.offset - unreviewed))))
    return AlertPage(total=_count(db, conds), items=summaries(db, rows))


class ReviewOut(BaseModel):
    verdict: str
    reason: str
    reviewer: str
    at: datetime


class ResponseOut(BaseModel):
    note: str
    by: str
    at: datetime
    photo: MediaOut | None


class TimelineEntry(BaseModel):
    at: datetime
    what: str


class AlertDetail(AlertSummary):
    seq: int
    agent: str
    sent_at: datetime
    detections: list[dict[str, Any]]
    details: dict[str, Any]
    frame_width: int
    frame_height: int
    model_name: str
    media: list[MediaOut]
    reviews: list[ReviewOut]
    responses: list[ResponseOut]
    timeline: list[TimelineEntry]


def alert_detail(db: Session, user: User, event_id: str | uuid.UUID) -> AlertDetail:
    ev = visible_event(db, user, event_id)
    media = list(db.scalars(select(Media).where(Media.event_id == ev.id, Media.kind != "response_photo")))
    reviews = list(db.scalars(select(Review).where(Review.event_id == ev.id).order_by(Review.created_at)))
    responses = list(
        db.scalars(select(Response).where(Response.event_id == ev.id).order_by(Response.created_at))
    )
    photos = {
        m.id: m for m in db.scalars(select(Media).where(Media.id.in_([r.photo_media_id for r in responses])))
    }
    base = summaries(db, [(ev, ev.restaurant.name, ev.restaurant.district, ev.camera.camera_id)])[0]
    timeline = [TimelineEntry(at=ev.started_at, what="violation began")]
    if ev.ended_at:
        timeline.append(TimelineEntry(at=ev.ended_at, what="violation ended"))
    timeline.append(TimelineEntry(at=ev.received_at, what="alert received"))
    timeline += [TimelineEntry(at=r.created_at, what=f"{r.verdict} by {r.user.username}") for r in reviews]
    timeline += [TimelineEntry(at=r.created_at, what=f"answered by {r.user.username}") for r in responses]
    return AlertDetail(
        **base.model_dump(),
        seq=ev.seq,
        agent=ev.agent_id,
        sent_at=ev.sent_at,
        detections=ev.detections,
        details=ev.details,
        frame_width=ev.frame_width,
        frame_height=ev.frame_height,
        model_name=ev.model_name,
        media=[media_out(m) for m in sorted(media, key=lambda m: m.kind)],
        reviews=[
            ReviewOut(verdict=r.verdict, reason=r.reason, reviewer=r.user.username, at=r.created_at)
            for r in reviews
        ],
        responses=[
            ResponseOut(
                note=r.note,
                by=r.user.username,
                at=r.created_at,
                photo=media_out(photos[r.photo_media_id]) if r.photo_media_id else None,
            )
            for r in responses
        ],
        timeline=sorted(timeline, key=lambda t: t.at),
    )


def filter_options(db: Session, user: User) -> dict[str, list[Any]]:
    """Choices for the filter form, limited to what the user may see."""
    scope = restaurant_filter(user, Restaurant.id)
    restaurants = list(
        db.execute(select(Restaurant.id, Restaurant.name).where(scope).order_by(Restaurant.id))
    )
    cameras = list(
        db.execute(
            select(Camera.id, Camera.restaurant_id, Camera.camera_id)
            .where(restaurant_filter(user, Camera.restaurant_id))
            .order_by(Camera.restaurant_id, Camera.camera_id)
        )
    )
    return {
        "districts": list(
            db.scalars(select(Restaurant.district).where(scope).distinct().order_by(Restaurant.district))
        ),
        "restaurants": restaurants,
        "cameras": cameras,
        "rules": list(db.scalars(select(Event.rule).distinct().order_by(Event.rule))),
        "severities": ["low", "medium", "high", "critical"],
    }


# -- pages


@router.get("/queue", response_class=HTMLResponse, include_in_schema=False)
def queue_page(
    request: Request, principal: PageUser, db: Db, f: Annotated[AlertFilter, Query()]
) -> HTMLResponse:
    if principal.role == "restaurant":
        raise HTTPException(403, "restaurant users use the portal")
    f = with_display_tz(request, f)
    page = list_alerts(db, principal.user, f)
    next_url = None
    if page.total > f.offset + f.limit:
        params = f.model_dump(mode="json", exclude_none=True) | {"offset": f.offset + f.limit}
        next_url = "/queue?" + urlencode(params)
    return request.app.state.templates.TemplateResponse(
        request,
        "alerts/queue.html",
        {"page": page, "f": f, "options": filter_options(db, principal.user), "next_url": next_url},
    )


@router.get("/portal", response_class=HTMLResponse, include_in_schema=False)
def portal_page(
    request: Request, principal: PageUser, db: Db, f: Annotated[AlertFilter, Query()]
) -> HTMLResponse:
    page = list_alerts(db, principal.user, with_display_tz(request, f))
    return request.app.state.templates.TemplateResponse(request, "alerts/portal.html", {"page": page, "f": f})


@router.get("/alerts/{event_id}", response_class=HTMLResponse, include_in_schema=False)
def alert_page(request: Request, event_id: str, principal: PageUser, db: Db) -> HTMLResponse:
    alert = alert_detail(db, principal.user, event_id)
    nxt = None
    if principal.role in ("admin", "inspector"):
        unreviewed = alert_conditions(principal.user, AlertFilter(status="unreviewed"))
        nxt = db.scalar(
            select(Event.id)
            .where(*unreviewed, Event.id != alert.id)
            .order_by(Event.started_at.desc())
            .limit(1)
        )
    return request.app.state.templates.TemplateResponse(
        request, "alerts/detail.html", {"a": alert, "next_id": nxt}
    )


# -- API


@router.get("/api/v1/alerts", tags=["alerts"])
def api_list(request: Request, principal: ApiUser, db: Db, f: Annotated[AlertFilter, Query()]) -> AlertPage:
    """Alerts the caller may see, unreviewed first, with filters."""
    return list_alerts(db, principal.user, with_display_tz(request, f))


@router.get("/api/v1/alerts/{event_id}", tags=["alerts"])
def api_detail(event_id: str, principal: ApiUser, db: Db) -> AlertDetail:
    """One alert with its media, reviews, responses and timeline."""
    return alert_detail(db, principal.user, event_id)
