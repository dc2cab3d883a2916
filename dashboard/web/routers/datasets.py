"""Dataset export for ML staff (roles ml and admin): a page with the filters, and the zip it builds."""

from __future__ import annotations

import shutil
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse
from sqlalchemy import select
from starlette.background import BackgroundTask

from dashboard.dataset_export import ExportOptions, GroupBy, export_zip, parse_when
from dashboard.models import Restaurant, now_utc
from dashboard.web.auth import ApiUser, Db, PageUser, Principal, require_roles

router = APIRouter()
ROLES = ("ml", "admin")


def _options(
    request: Request,
    since: str | None,
    until: str | None,
    restaurant: list[str],
    val_fraction: float,
    group_by: GroupBy,
) -> ExportOptions:
    tz = request.app.state.cfg.http.display_timezone
    try:
        return ExportOptions(
            since=parse_when(since, tz) if since else None,
            until=parse_when(until, tz, end=True) if until else None,
            restaurants=tuple(r for r in restaurant if r),
            val_fraction=val_fraction,
            group_by=group_by,
            timezone=tz,
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _zip_response(request: Request, principal: Principal, db: Db, opts: ExportOptions) -> FileResponse:
    name = f"bk-dataset-{now_utc():%Y%m%d-%H%M%S}"
    archive = export_zip(db, request.app.state.store, opts, name)
    return FileResponse(
        archive,
        media_type="application/zip",
        filename=archive.name,
        background=BackgroundTask(shutil.rmtree, archive.parent, ignore_errors=True),
    )


Since = Annotated[str | None, Query(description="alerts started on or after (date or date-time)")]
Until = Annotated[str | None, Query(description="alerts started before; a bare date counts to its end")]
Restaurants = Annotated[list[str], Query(description="only these restaurants (repeat); none = all")]
ValFraction = Annotated[float, Query(ge=0.0, le=0.9, description="share of groups in val")]
Group = Annotated[GroupBy, Query(description="split unit: day (restaurant+camera+day), camera, restaurant")]


@router.get("/datasets", response_class=HTMLResponse, include_in_schema=False)
def datasets_page(request: Request, principal: PageUser, db: Db) -> HTMLResponse:
    require_roles(principal, *ROLES)
    restaurants = db.scalars(select(Restaurant).order_by(Restaurant.id)).all()
    return request.app.state.templates.TemplateResponse(
        request, "datasets/index.html", {"restaurants": restaurants}
    )


@router.get("/datasets/export.zip", include_in_schema=False)
def export_page(
    request: Request,
    principal: PageUser,
    db: Db,
    since: Since = None,
    until: Until = None,
    restaurant: Restaurants = [],  # noqa: B006 (FastAPI copies query defaults)
    val_fraction: ValFraction = 0.2,
    group_by: Group = "day",
) -> FileResponse:
    require_roles(principal, *ROLES)
    opts = _options(request, since, until, restaurant, val_fraction, group_by)
    return _zip_response(request, principal, db, opts)


@router.get("/api/v1/datasets/export.zip", tags=["datasets"], response_class=FileResponse)
def export_api(
    request: Request,
    principal: ApiUser,
    db: Db,
    since: Since = None,
    until: Until = None,
    restaurant: Restaurants = [],  # noqa: B006
    val_fraction: ValFraction = 0.2,
    group_by: Group = "day",
) -> FileResponse:
    """Reviewed alerts as a training dataset zip: YOLO, COCO, Label Studio tasks, datasheet (ml, admin)."""
    require_roles(principal, *ROLES)
    opts = _options(request, since, until, restaurant, val_fraction, group_by)
    return _zip_response(request, principal, db, opts)
