"""The model registry: upload (ML staff and admins), list and detail pages with cards, comparison reports,
the agents running each model and its false-positive rate; the archive download for edge agents.

Inspectors may look; restaurant users never see the registry.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from datetime import datetime
from pathlib import PurePosixPath
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.media import MediaNotFound
from dashboard.models import Agent, ModelVersion, Rollout, User, now_utc
from dashboard.registry import (
    DuplicateModel,
    ModelOut,
    RegistryError,
    model_summaries,
    parse_report,
    register_model,
)
from dashboard.rollout import UNFINISHED, download_grant
from dashboard.web.auth import ApiUser, Csrf, Db, PageUser, Principal, api_principal, require_roles
from dashboard.web.scope import restaurant_filter

router = APIRouter()
VIEW_ROLES = ("admin", "ml", "inspector")
EDIT_ROLES = ("admin", "ml")
DOWNLOAD_CHUNK_BYTES = 1024**2


class TargetOut(BaseModel):
    restaurant: str
    agent: str
    canary: bool
    state: str
    message: str
    sent_at: datetime | None
    previous_model: str | None = Field(description="what it ran before: where it goes back to if stopped")


class RolloutOut(BaseModel):
    id: int
    model_id: int
    model: str
    state: str
    message: str
    created_at: datetime
    token_expires_at: datetime
    targets: list[TargetOut]


class ModelDetail(ModelOut):
    report_md: str | None
    rollouts: list[RolloutOut]


def rollout_out(r: Rollout) -> RolloutOut:
    return RolloutOut(
        id=r.id,
        model_id=r.model_id,
        model=f"{r.model.name} {r.model.version}",
        state=r.state,
        message=r.message,
        created_at=r.created_at,
        token_expires_at=r.token_expires_at,
        targets=[
            TargetOut(
                restaurant=t.restaurant_id,
                agent=t.agent_id,
                canary=t.position == 0,
                state=t.state,
                message=t.message,
                sent_at=t.sent_at,
                previous_model=(
                    f"{t.previous_model_name} {t.previous_model_version}" if t.previous_model_name else None
                ),
            )
            for t in r.targets
        ],
    )


def _models(db: Session, user: User, only: int | None = None) -> list[ModelOut]:
    """Registry entries with the agents and reviews of the restaurants ``user`` may see."""
    return model_summaries(db, functools.partial(restaurant_filter, user), only)


def model_detail(db: Session, user: User, model_id: int) -> ModelDetail:
    found = _models(db, user, only=model_id)
    if not found:
        raise HTTPException(404, "no such model")
    entry = db.get(ModelVersion, model_id)
    assert entry is not None
    rollouts = (
        db.scalars(select(Rollout).where(Rollout.model_id == model_id).order_by(Rollout.id.desc()))
        if user.role in EDIT_ROLES  # a rollout names agents of every district
        else []
    )
    return ModelDetail(
        **found[0].model_dump(), report_md=entry.report_md, rollouts=[rollout_out(r) for r in rollouts]
    )


def _read(upload: UploadFile | None, limit: int, what: str) -> bytes | None:
    if upload is None or not upload.filename:
        return None
    blob = upload.file.read(limit + 1)
    if len(blob) > limit:
        raise HTTPException(413, f"{what} is larger than {limit} bytes")
    return blob


def upload_model(
    request: Request,
    db: Session,
    principal: Principal,
    archive: UploadFile,
    report_md: UploadFile | None,
    report_json: UploadFile | None,
) -> ModelVersion:
    """Check, store and register an upload; 422 (bad archive), 409 (name and version taken), 413."""
    require_roles(principal, *EDIT_ROLES)
    limit = request.app.state.cfg.registry.max_archive_bytes
    blob = _read(archive, limit, "the archive")
    if not blob:
        raise HTTPException(422, "no model archive uploaded")
    md = _read(report_md, 4 * 1024**2, "report.md")
    try:
        report = parse_report(_read(report_json, 4 * 1024**2, "report.json"))
        entry = register_model(
            db,
            request.app.state.store,
            blob,
            md.decode("utf-8", "replace") if md else None,
            report,
            principal.user.id,
        )
    except DuplicateModel as exc:
        raise HTTPException(409, str(exc)) from None
    except RegistryError as exc:
        raise HTTPException(422, str(exc)) from None
    db.commit()
    return entry


Upload = Annotated[UploadFile, File(description="tar.gz or zip of a model folder")]
OptionalUpload = Annotated[UploadFile | None, File()]


@router.get("/models", response_class=HTMLResponse, include_in_schema=False)
def models_page(request: Request, principal: PageUser, db: Db) -> HTMLResponse:
    require_roles(principal, *VIEW_ROLES)
    return request.app.state.templates.TemplateResponse(
        request,
        "models/index.html",
        {"models": _models(db, principal.user), "can_edit": principal.role in EDIT_ROLES},
    )


@router.post("/models", include_in_schema=False, dependencies=[Csrf])
def upload_form(
    request: Request,
    principal: PageUser,
    db: Db,
    archive: Upload,
    report_md: OptionalUpload = None,
    report_json: OptionalUpload = None,
) -> Response:
    try:
        entry = upload_model(request, db, principal, archive, report_md, report_json)
    except HTTPException as exc:
        if exc.status_code == 403:
            raise
        db.rollback()
        return request.app.state.templates.TemplateResponse(
            request,
            "models/index.html",
            {"models": _models(db, principal.user), "can_edit": True, "error": exc.detail},
            status_code=exc.status_code,
        )
    return RedirectResponse(f"/models/{entry.id}", status_code=303)


@router.get("/models/{model_id}", response_class=HTMLResponse, include_in_schema=False)
def model_page(request: Request, model_id: int, principal: PageUser, db: Db) -> HTMLResponse:
    require_roles(principal, *VIEW_ROLES)
    detail = model_detail(db, principal.user, model_id)
    agents = db.scalars(
        select(Agent)
        .where(restaurant_filter(principal.user, Agent.restaurant_id))
        .order_by(Agent.restaurant_id, Agent.agent_id)
    )
    return request.app.state.templates.TemplateResponse(
        request,
        "models/detail.html",
        {
            "m": detail,
            "all_agents": list(agents),
            "can_edit": principal.role in EDIT_ROLES,
            "unfinished": UNFINISHED,
        },
    )


@router.get("/api/v1/models", tags=["models"])
def list_models(principal: ApiUser, db: Db) -> list[ModelOut]:
    """The registry, newest first (admins, ML staff, inspectors)."""
    require_roles(principal, *VIEW_ROLES)
    return _models(db, principal.user)


@router.post("/api/v1/models", status_code=201, tags=["models"], dependencies=[Csrf])
def upload_api(
    request: Request,
    principal: ApiUser,
    db: Db,
    archive: Upload,
    report_md: OptionalUpload = None,
    report_json: OptionalUpload = None,
) -> ModelDetail:
    """Upload a model folder archive with the optional ``train compare`` report (admins, ML staff)."""
    entry = upload_model(request, db, principal, archive, report_md, report_json)
    return model_detail(db, principal.user, entry.id)


@router.get("/api/v1/models/{model_id}", tags=["models"])
def get_model(model_id: int, principal: ApiUser, db: Db) -> ModelDetail:
    """A model's card, report, agents running it, false-positive rate and rollouts."""
    require_roles(principal, *VIEW_ROLES)
    return model_detail(db, principal.user, model_id)


def download_access(request: Request, db: Db) -> None:
    """A rollout's (or switch-back's) token for this very model and not expired, or an admin/ML login."""
    auth = request.headers.get("authorization", "")
    grant = download_grant(db, auth[7:].strip()) if auth[:7].lower() == "bearer " else None
    if grant is None:
        require_roles(api_principal(request, db), *EDIT_ROLES)
        return
    model_id, expires_at = grant
    if str(model_id) != request.path_params.get("model_id"):
        raise HTTPException(403, "this download token is for another model")
    if expires_at <= now_utc():
        raise HTTPException(401, "the download token has expired", headers={"WWW-Authenticate": "Bearer"})


def _chunks(archive: BinaryIO) -> Iterator[bytes]:
    """The archive piece by piece, so a large one never sits in memory; closed when done or abandoned."""
    with archive:
        while chunk := archive.read(DOWNLOAD_CHUNK_BYTES):
            yield chunk


@router.get(
    "/api/v1/models/{model_id}/download",
    tags=["models"],
    response_class=StreamingResponse,
    dependencies=[Depends(download_access)],
)
def download(request: Request, model_id: int, db: Db) -> StreamingResponse:
    """The model archive as uploaded, streamed; edge agents send ``Authorization: Bearer <rollout token>``."""
    entry = db.get(ModelVersion, model_id)
    if entry is None:
        raise HTTPException(404, "no such model")
    try:
        archive = request.app.state.store.open(entry.archive_key)
    except MediaNotFound:
        raise HTTPException(404, "model archive missing from the store") from None
    filename = f"{entry.name}-{entry.version}.{PurePosixPath(entry.archive_key).name.split('.', 1)[1]}"
    headers = {
        "Content-Length": str(entry.archive_bytes),
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Cache-Control": "no-store",
    }
    media_type = entry.archive_type
    db.close()  # a slow download needs only the file: the database connection goes back to the pool now
    return StreamingResponse(_chunks(archive), media_type=media_type, headers=headers)
