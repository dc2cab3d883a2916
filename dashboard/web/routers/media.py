"""Media files, served only through this authorised route (ids are random; scope is checked every time)."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from dashboard.media import MediaNotFound
from dashboard.models import Media
from dashboard.web.auth import ApiUser, Db
from dashboard.web.scope import may_see_restaurant

router = APIRouter()
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@router.get("/media/{media_id}", tags=["media"], response_class=Response)
@router.get("/api/v1/media/{media_id}", tags=["media"], response_class=Response, include_in_schema=False)
def get_media(request: Request, media_id: str, principal: ApiUser, db: Db) -> Response:
    """A snapshot, clip or rectification photo (supports Range requests for video seeking)."""
    media = db.get(Media, media_id) if len(media_id) <= 32 else None
    if media is None or not may_see_restaurant(db, principal.user, media.restaurant_id):
        raise HTTPException(404, "no such media")
    try:
        blob = request.app.state.store.get(media.storage_key)
    except MediaNotFound:
        raise HTTPException(404, "media file missing from the store") from None
    headers = {"Cache-Control": "private, max-age=3600", "Accept-Ranges": "bytes"}
    m = _RANGE.match(request.headers.get("range", ""))
    if m and (m[1] or m[2]):
        size = len(blob)
        start, end = (int(m[1]), int(m[2]) if m[2] else size - 1) if m[1] else (size - int(m[2]), size - 1)
        if start >= size or start > end:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"})
        end = min(end, size - 1)
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        return Response(blob[start : end + 1], 206, headers, media_type=media.content_type)
    return Response(blob, headers=headers, media_type=media.content_type)
