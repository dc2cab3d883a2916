"""Every authentication and authorisation dependency of the web app, in one place.

Two ways in: the signed session cookie (browser; state-changing requests then need the CSRF token) and
``Authorization: Bearer <token>`` (integrations; no CSRF, since browsers never send it on their own).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import Depends, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.models import ApiToken, User, now_utc
from dashboard.passwords import token_digest

CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


def get_db(request: Request) -> Iterator[Session]:
    """One database session per request."""
    with request.app.state.sessions() as session:
        yield session


Db = Annotated[Session, Depends(get_db)]


@dataclass(frozen=True)
class Principal:
    """Who is asking, and how they proved it."""

    user: User
    via: Literal["cookie", "token"]

    @property
    def role(self) -> str:
        return self.user.role


class LoginRequired(Exception):
    """Raised by page routes; the app turns it into a redirect to /login."""


def password_fingerprint(user: User) -> str:
    """Bound into the session: changing the password ends every session of that user."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use (also for the anonymous login page)."""
    token = request.session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def _principal(request: Request, db: Session) -> Principal | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        row = db.scalar(select(ApiToken).where(ApiToken.token_sha256 == token_digest(auth[7:].strip())))
        if row is None or row.revoked or not row.user.active:
            raise HTTPException(401, "invalid or revoked token", headers={"WWW-Authenticate": "Bearer"})
        row.last_used_at = now_utc()
        db.commit()
        return Principal(row.user, "token")
    uid = request.session.get("uid")
    if uid is None:
        return None
    user = db.get(User, uid)
    if user is None or not user.active or request.session.get("pwf") != password_fingerprint(user):
        request.session.clear()
        return None
    return Principal(user, "cookie")


def api_principal(request: Request, db: Db) -> Principal:
    """API routes: 401 without a valid cookie session or bearer token."""
    principal = _principal(request, db)
    if principal is None:
        raise HTTPException(401, "not authenticated", headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal
    return principal


def page_principal(request: Request, db: Db) -> Principal:
    """Page routes: redirect to the login page without a session."""
    principal = _principal(request, db)
    if principal is None:
        raise LoginRequired
    request.state.principal = principal
    return principal


ApiUser = Annotated[Principal, Depends(api_principal)]
PageUser = Annotated[Principal, Depends(page_principal)]


async def check_csrf(request: Request) -> None:
    """State-changing requests made with the cookie must carry the session's CSRF token."""
    if request.headers.get("authorization", "")[:7].lower() == "bearer ":
        return  # token-authenticated (and validated by the principal dependency): no ambient credential
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        sent = (await request.form()).get(CSRF_FIELD)
    expected = request.session.get("csrf")
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(sent, expected):
        raise HTTPException(403, "missing or wrong CSRF token")


Csrf = Depends(check_csrf)


def require_roles(principal: Principal, *roles: str) -> None:
    if principal.role not in roles:
        raise HTTPException(403, f"this needs the role {' or '.join(roles)}")
