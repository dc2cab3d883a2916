"""Users: create logins with roles (admins), for integrations and the city's identity management."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from dashboard.admin import AdminError, create_user
from dashboard.models import User
from dashboard.web.auth import ApiUser, Csrf, Db, require_roles
from dashboard.web.routers.session import Me

router = APIRouter(tags=["users"])


class UserIn(BaseModel):
    username: str
    password: str = Field(min_length=8, max_length=256)
    role: Literal["admin", "inspector", "restaurant", "ml"]
    restaurant: str | None = None
    districts: list[str] = []
    display_name: str = ""


class UserOut(Me):
    active: bool
    created_at: datetime


def _out(u: User) -> UserOut:
    return UserOut.of(u, active=u.active, created_at=u.created_at)


@router.get("/api/v1/users")
def list_users(principal: ApiUser, db: Db) -> list[UserOut]:
    """All logins (admins)."""
    require_roles(principal, "admin")
    return [_out(u) for u in db.scalars(select(User).order_by(User.username))]


@router.post("/api/v1/users", status_code=201, dependencies=[Csrf])
def add_user(body: UserIn, principal: ApiUser, db: Db) -> UserOut:
    """Create a login (admins). Inspectors need districts, restaurant users a restaurant."""
    require_roles(principal, "admin")
    try:
        user = create_user(
            db,
            body.username,
            body.password,
            body.role,
            body.restaurant,
            body.districts,
            body.display_name,
            actor=principal.user.id,
        )
    except AdminError as exc:
        raise HTTPException(409 if "already exists" in str(exc) else 422, str(exc)) from None
    db.commit()
    return _out(user)
