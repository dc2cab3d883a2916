"""Statistics: alerts per day by rule, per restaurant, false-positive rate per rule and per model version,
time to review and time to rectify — all within the caller's scope."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from datetime import date, timedelta

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from dashboard.models import Event, Restaurant, User, now_utc
from dashboard.web.auth import ApiUser, Db, PageUser
from dashboard.web.charts import hbars, stacked_bars
from dashboard.web.scope import restaurant_filter

router = APIRouter()


class Rate(BaseModel):
    key: str
    reviewed: int
    false_positive: int
    rate: float


class Durations(BaseModel):
    count: int
    median_s: float | None
    p90_s: float | None


class Stats(BaseModel):
    days: list[str]
    per_day_by_rule: dict[str, list[int]]
    per_restaurant: list[tuple[str, int]]
    fp_rate_by_rule: list[Rate]
    fp_rate_by_model: list[Rate]
    time_to_review: Durations
    time_to_rectify: Durations


def _durations(values: list[float]) -> Durations:
    if not values:
        return Durations(count=0, median_s=None, p90_s=None)
    values.sort()
    return Durations(
        count=len(values),
        median_s=statistics.median(values),
        p90_s=values[min(len(values) - 1, int(0.9 * len(values)))],
    )


CACHE_S = 60.0  # statistics may be a minute old; the queries scan a month of alerts


def cached_stats(request: Request, db: Session, user: User, days: int) -> Stats:
    """``compute_stats``, remembered per app, scope and period for ``CACHE_S``."""
    if not hasattr(request.app.state, "stats_cache"):
        request.app.state.stats_cache = {}
    cache: dict[tuple[object, ...], tuple[float, Stats]] = request.app.state.stats_cache
    key = (user.role, user.restaurant_id, tuple(sorted(user.districts)), days)
    hit = cache.get(key)
    if hit is not None and time.monotonic() - hit[0] < CACHE_S:
        return hit[1]
    if len(cache) > 1000:
        cache.clear()
    stats = compute_stats(db, user, days)
    cache[key] = (time.monotonic(), stats)
    return stats


def compute_stats(db: Session, user: User, days: int) -> Stats:
    start = now_utc() - timedelta(days=days)
    scope = (restaurant_filter(user, Event.restaurant_id), Event.started_at >= start)
    day_list = [(start.date() + timedelta(days=i + 1)).isoformat() for i in range(days)]
    per_day: dict[str, list[int]] = defaultdict(lambda: [0] * days)
    index = {d: i for i, d in enumerate(day_list)}
    for day, rule, n in db.execute(
        select(func.date(Event.started_at), Event.rule, func.count())
        .where(*scope)
        .group_by(func.date(Event.started_at), Event.rule)
    ):
        key = day.isoformat() if isinstance(day, date) else str(day)[:10]
        if key in index:
            per_day[rule][index[key]] += n
    per_restaurant = [
        (f"{name} ({rid})", n)
        for rid, name, n in db.execute(
            select(Event.restaurant_id, Restaurant.name, func.count())
            .join(Restaurant)
            .where(*scope)
            .group_by(Event.restaurant_id, Restaurant.name)
            .order_by(func.count().desc())
            .limit(20)
        )
    ]

    def rates(column) -> list[Rate]:
        rows = db.execute(
            select(column, func.count(), func.sum(case((Event.verdict == "false_positive", 1), else_=0)))
            .where(*scope, Event.verdict.is_not(None))
            .group_by(column)
            .order_by(column)
        )
        return [
            Rate(key=str(k), reviewed=n, false_positive=int(fp or 0), rate=(fp or 0) / n) for k, n, fp in rows
        ]

    review_s, rectify_s = [], []
    for started, reviewed, responded in db.execute(
        select(Event.started_at, Event.reviewed_at, Event.responded_at)
        .where(*scope, (Event.reviewed_at.is_not(None)) | (Event.responded_at.is_not(None)))
        .limit(100_000)
    ):
        if reviewed:
            review_s.append((reviewed - started).total_seconds())
        if responded:
            rectify_s.append((responded - started).total_seconds())
    return Stats(
        days=day_list,
        per_day_by_rule=dict(per_day),
        per_restaurant=per_restaurant,
        fp_rate_by_rule=rates(Event.rule),
        fp_rate_by_model=rates(Event.model_name + " " + Event.model_version),
        time_to_review=_durations(review_s),
        time_to_rectify=_durations(rectify_s),
    )


@router.get("/stats", response_class=HTMLResponse, include_in_schema=False)
def stats_page(
    request: Request, principal: PageUser, db: Db, days: int = Query(30, ge=1, le=365)
) -> HTMLResponse:
    s = cached_stats(request, db, principal.user, days)
    charts = {
        "per_day": stacked_bars(s.days, s.per_day_by_rule),
        "per_restaurant": hbars([(k, float(v)) for k, v in s.per_restaurant]),
        "fp_rule": hbars([(r.key, r.rate * 100) for r in s.fp_rate_by_rule], "{:.0f} %", 100),
        "fp_model": hbars([(r.key, r.rate * 100) for r in s.fp_rate_by_model], "{:.0f} %", 100),
    }
    return request.app.state.templates.TemplateResponse(
        request, "stats/index.html", {"s": s, "charts": charts, "days": days}
    )


@router.get("/api/v1/stats", tags=["stats"])
def stats_api(request: Request, principal: ApiUser, db: Db, days: int = Query(30, ge=1, le=365)) -> Stats:
    """The statistics page's numbers (up to a minute old)."""
    return cached_stats(request, db, principal.user, days)
