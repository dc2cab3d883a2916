"""Login and logout (cookie sessions, rate-limited, audited) and who-am-I."""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Self

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel
from sqlalchemy import select

from dashboard.admin import audit
from dashboard.models import User
from dashboard.passwords import verify_password
from dashboard.web.auth import ApiUser, Csrf, Db, PageUser, password_fingerprint

router = APIRouter()


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(request: Request, next: str = "/") -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(
        request, "session/login.html", {"next": _safe_next(next), "error": None}
    )


@router.post("/login", include_in_schema=False, dependencies=[Csrf], response_model=None)
def login(
    request: Request,
    db: Db,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=256)],
    next: Annotated[str, Form()] = "/",
) -> HTMLResponse | RedirectResponse:
    limiter = request.app.state.login_limiter
    address = request.client.host if request.client else "?"

    def fail(message: str, status: int) -> HTMLResponse:
        return request.app.state.templates.TemplateResponse(
            request, "session/login.html", {"next": _safe_next(next), "error": message}, status_code=status
        )

    if limiter.blocked(db, address, username):
        return fail("Too many failed logins. Try again in a few minutes.", 429)
    user = db.scalar(select(User).where(User.username == username))
    if not verify_password(user.password_hash if user and user.active else None, password):
        limiter.failed(db, address, username)
        audit(db, user.id if user else None, "login_failed", "user", username, address=address)
        db.commit()
        return fail("Wrong username or password.", 401)
    assert user is not None
    limiter.succeeded(db, address, username)
    request.session.clear()  # no session fixation: a fresh CSRF token too
    request.session.update(uid=user.id, pwf=password_fingerprint(user), csrf=secrets.token_urlsafe(24))
    audit(db, user.id, "login", "user", str(user.id), address=address)
    db.commit()
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", include_in_schema=False, dependencies=[Csrf])
def logout(request: Request, principal: PageUser, db: Db) -> RedirectResponse:
    audit(db, principal.user.id, "logout", "user", str(principal.user.id))
    db.commit()
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@router.get("/", include_in_schema=False)
def home(principal: PageUser) -> RedirectResponse:
    return RedirectResponse("/portal" if principal.role == "restaurant" else "/queue", status_code=303)


class Me(BaseModel):
    """A user as the API shows them (``UserOut`` adds what admins see)."""

    id: int
    username: str
    display_name: str
    role: str
    restaurant: str | None
    districts: list[str]

    @classmethod
    def of(cls, u: User, **more: Any) -> Self:
        return cls(
            id=u.id,
            username=u.username,
            display_name=u.display_name,
            role=u.role,
            restaurant=u.restaurant_id,
            districts=list(u.districts),
            **more,
        )


@router.get("/api/v1/me", tags=["session"])
def me(principal: ApiUser) -> Me:
    """The authenticated user."""
    u = principal.user
    if not u.active:
        raise HTTPException(401)
    return Me.of(u)
