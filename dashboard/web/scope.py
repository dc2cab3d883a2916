"""Tenant scoping: which restaurants' rows a user may see, applied to every query and media file.

admin and ml see everything; an inspector sees the restaurants of their districts; a restaurant user
sees only their own restaurant. A row outside the scope is reported as 404, never 403, so ids of other
tenants cannot be probed.
"""

from __future__ import annotations

import uuid

from fastapi import HTTPException
from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.orm import Session

from dashboard.models import Event, Restaurant, User


def restaurant_filter(user: User, column: ColumnElement[str]) -> ColumnElement[bool]:
    """A WHERE clause limiting ``column`` (a restaurant id) to what ``user`` may see."""
    if user.role in ("admin", "ml"):
        return true()
    if user.role == "inspector":
        return column.in_(select(Restaurant.id).where(Restaurant.district.in_(list(user.districts))))
    if user.role == "restaurant" and user.restaurant_id:
        return column == user.restaurant_id
    return false()


def may_see_restaurant(session: Session, user: User, restaurant_id: str) -> bool:
    if user.role in ("admin", "ml"):
        return True
    if user.role == "restaurant":
        return user.restaurant_id == restaurant_id
    if user.role == "inspector":
        restaurant = session.get(Restaurant, restaurant_id)
        return restaurant is not None and restaurant.district in user.districts
    return False


def visible_event(session: Session, user: User, event_id: str | uuid.UUID) -> Event:
    """The event if ``user`` may see it; 404 otherwise (also for malformed ids)."""
    try:
        eid = event_id if isinstance(event_id, uuid.UUID) else uuid.UUID(str(event_id))
    except ValueError:
        raise HTTPException(404, "no such alert") from None
    event = session.get(Event, eid)
    if event is None or not may_see_restaurant(session, user, event.restaurant_id):
        raise HTTPException(404, "no such alert")
    return event
