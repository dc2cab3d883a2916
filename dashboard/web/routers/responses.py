"""Restaurants' answers to alerts: a rectification note and an optional photo, audited."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.admin import audit
from dashboard.media import EXTENSIONS
from dashboard.models import Media, Response, now_utc
from dashboard.persist import new_media_id
from dashboard.web.auth import ApiUser, Csrf, Db, PageUser, Principal, require_roles
from dashboard.web.routers.alerts import AlertDetail, alert_detail
from dashboard.web.scope import visible_event

router = APIRouter()
MAX_NOTE_CHARS = 4000


def _image_type(blob: bytes) -> str:
    if blob.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if blob.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    raise HTTPException(422, "the photo must be a JPEG or PNG image")


def record_response(
    request: Request, db: Session, principal: Principal, event_id: str, note: str, photo: UploadFile | None
) -> None:
    """Store a restaurant's answer (with its photo in the media store) and audit it."""
    require_roles(principal, "restaurant")
    event = visible_event(db, principal.user, event_id)
    note = note.strip()
    if not note:
        raise HTTPException(422, "describe what was rectified")
    photo_id = None
    if photo is not None and photo.filename:
        limit = request.app.state.cfg.media.max_upload_bytes
        blob = photo.file.read(limit + 1)
        if len(blob) > limit:
            raise HTTPException(413, f"the photo is over {limit} bytes")
        content_type = _image_type(blob)
        sha = hashlib.sha256(blob).hexdigest()
        existing = db.scalar(select(Media).where(Media.event_id == event.id, Media.sha256 == sha))
        if existing is not None:
            photo_id = existing.id
        else:
            key = f"{event.restaurant_id}/{event.id}/response-{sha[:16]}.{EXTENSIONS[content_type]}"
            request.app.state.store.put(key, blob, content_type)
            photo_id = new_media_id()
            db.add(
                Media(
                    id=photo_id,
                    event_id=event.id,
                    restaurant_id=event.restaurant_id,
                    kind="response_photo",
                    content_type=content_type,
                    sha256=sha,
                    size_bytes=len(blob),
                    storage_key=key,
                )
            )
            db.flush()
    now = now_utc()
    db.add(
        Response(
            event_id=event.id, user_id=principal.user.id, note=note, photo_media_id=photo_id, created_at=now
        )
    )
    event.responded_at = now
    audit(
        db,
        principal.user.id,
        "response",
        "event",
        str(event.id),
        note=note[:500],
        photo=photo_id,
        via=principal.via,
    )
    db.commit()


@router.post("/alerts/{event_id}/response", include_in_schema=False, dependencies=[Csrf])
def response_form(
    request: Request,
    event_id: str,
    principal: PageUser,
    db: Db,
    note: Annotated[str, Form(max_length=MAX_NOTE_CHARS)],
    photo: Annotated[UploadFile | None, File()] = None,
) -> RedirectResponse:
    record_response(request, db, principal, event_id, note, photo)
    return RedirectResponse(f"/alerts/{event_id}", status_code=303)


@router.post("/api/v1/alerts/{event_id}/response", tags=["alerts"], dependencies=[Csrf])
def response_api(
    request: Request,
    event_id: str,
    principal: ApiUser,
    db: Db,
    note: Annotated[str, Form(max_length=MAX_NOTE_CHARS)],
    photo: Annotated[UploadFile | None, File()] = None,
) -> AlertDetail:
    """Answer an alert with a rectification note and an optional JPEG/PNG photo (restaurant users)."""
    record_response(request, db, principal, event_id, note, photo)
    return alert_detail(db, principal.user, event_id)
