"""Administration: register restaurants and cameras, create users and API tokens (CLI and API share it).

Every change is written to the audit log with the acting user (None for the command line).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from brightkitchen.contract import ID_PATTERN
from dashboard.models import ROLES, ApiToken, AuditLog, Camera, Restaurant, User
from dashboard.passwords import hash_password, new_api_token

_ID_RE = re.compile(ID_PATTERN)


class AdminError(ValueError):
    """A request an administrator must correct (bad id, duplicate, missing restaurant)."""


def audit(
    session: Session,
    user_id: int | None,
    action: str,
    target_type: str = "",
    target_id: str = "",
    **detail: Any,
) -> None:
    """Append one line to the audit log (committed with the caller's transaction)."""
    session.add(
        AuditLog(user_id=user_id, action=action, target_type=target_type, target_id=target_id, detail=detail)
    )


def _check_id(kind: str, value: str) -> str:
    if not _ID_RE.match(value):
        raise AdminError(f"{kind} id {value!r} must match {ID_PATTERN} (it is used in MQTT topics)")
    return value


def create_restaurant(
    session: Session, rid: str, name: str, district: str, address: str = "", actor: int | None = None
) -> Restaurant:
    _check_id("restaurant", rid)
    if session.get(Restaurant, rid) is not None:
        raise AdminError(f"restaurant {rid!r} already exists")
    if not district.strip():
        raise AdminError("a restaurant needs a district (inspectors are assigned by district)")
    restaurant = Restaurant(id=rid, name=name or rid, district=district.strip(), address=address)
    session.add(restaurant)
    audit(session, actor, "create_restaurant", "restaurant", rid, name=name, district=district)
    return restaurant


def create_camera(
    session: Session, restaurant_id: str, camera_id: str, name: str = "", actor: int | None = None
) -> Camera:
    _check_id("camera", camera_id)
    if session.get(Restaurant, restaurant_id) is None:
        raise AdminError(f"restaurant {restaurant_id!r} does not exist; create it first")
    exists = session.scalar(
        select(Camera).where(Camera.restaurant_id == restaurant_id, Camera.camera_id == camera_id)
    )
    if exists is not None:
        raise AdminError(f"camera {camera_id!r} already exists in restaurant {restaurant_id!r}")
    camera = Camera(restaurant_id=restaurant_id, camera_id=camera_id, name=name or camera_id)
    session.add(camera)
    audit(session, actor, "create_camera", "camera", f"{restaurant_id}/{camera_id}", name=name)
    return camera


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    restaurant_id: str | None = None,
    districts: Sequence[str] = (),
    display_name: str = "",
    actor: int | None = None,
) -> User:
    """Create a login. Inspectors need districts, restaurant users a restaurant; others need neither."""
    if role not in ROLES:
        raise AdminError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", username):
        raise AdminError(f"username {username!r}: use 1-64 letters, digits and _ . @ -")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise AdminError(f"user {username!r} already exists")
    if role == "restaurant":
        if not restaurant_id or session.get(Restaurant, restaurant_id) is None:
            raise AdminError(f"a restaurant user needs an existing restaurant (got {restaurant_id!r})")
    elif restaurant_id:
        raise AdminError("only restaurant users belong to a restaurant")
    districts = sorted({d.strip() for d in districts if d.strip()})
    if role == "inspector" and not districts:
        raise AdminError("an inspector needs at least one district")
    if role != "inspector" and districts:
        raise AdminError("only inspectors are limited to districts")
    try:
        password_hash = hash_password(password)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    user = User(
        username=username,
        password_hash=password_hash,
        role=role,
        restaurant_id=restaurant_id,
        districts=list(districts),
        display_name=display_name or username,
    )
    session.add(user)
    session.flush()
    audit(
        session,
        actor,
        "create_user",
        "user",
        str(user.id),
        username=username,
        role=role,
        restaurant=restaurant_id,
        districts=list(districts),
    )
    return user


def set_password(session: Session, username: str, password: str, actor: int | None = None) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AdminError(f"no user {username!r}")
    try:
        user.password_hash = hash_password(password)
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    audit(session, actor, "set_password", "user", str(user.id))
    return user


def create_token(session: Session, username: str, name: str, actor: int | None = None) -> str:
    """Create an API token for a user; returns the token (shown once)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AdminError(f"no user {username!r}")
    token, digest = new_api_token()
    session.add(ApiToken(user_id=user.id, name=name, token_sha256=digest))
    audit(session, actor, "create_token", "user", str(user.id), name=name)
    return token
