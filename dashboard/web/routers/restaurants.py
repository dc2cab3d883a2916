"""Restaurants and their cameras: list (scoped) and register (admins), for integrations."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select

from dashboard.admin import AdminError, create_camera, create_restaurant
from dashboard.models import Restaurant
from dashboard.web.auth import ApiUser, Csrf, Db, require_roles
from dashboard.web.scope import may_see_restaurant, restaurant_filter

router = APIRouter(tags=["restaurants"])


class CameraIn(BaseModel):
    id: str = Field(description="contract id, as in the edge config")
    name: str = ""


class CameraOut(CameraIn):
    created_at: datetime


class RestaurantIn(BaseModel):
    id: str = Field(description="contract id; also the restaurant's MQTT username")
    name: str
    district: str
    address: str = ""


class RestaurantOut(RestaurantIn):
    created_at: datetime
    cameras: list[CameraOut]


def _out(r: Restaurant) -> RestaurantOut:
    return RestaurantOut(
        id=r.id,
        name=r.name,
        district=r.district,
        address=r.address,
        created_at=r.created_at,
        cameras=[CameraOut(id=c.camera_id, name=c.name, created_at=c.created_at) for c in r.cameras],
    )


@router.get("/api/v1/restaurants")
def list_restaurants(principal: ApiUser, db: Db) -> list[RestaurantOut]:
    """Restaurants the caller may see, with their cameras."""
    q = select(Restaurant).where(restaurant_filter(principal.user, Restaurant.id)).order_by(Restaurant.id)
    return [_out(r) for r in db.scalars(q)]


@router.post("/api/v1/restaurants", status_code=201, dependencies=[Csrf])
def add_restaurant(body: RestaurantIn, principal: ApiUser, db: Db) -> RestaurantOut:
    """Register a restaurant (admins)."""
    require_roles(principal, "admin")
    try:
        r = create_restaurant(db, body.id, body.name, body.district, body.address, actor=principal.user.id)
    except AdminError as exc:
        raise HTTPException(409 if "already exists" in str(exc) else 422, str(exc)) from None
    db.commit()
    db.refresh(r)
    return _out(r)


@router.post("/api/v1/restaurants/{restaurant_id}/cameras", status_code=201, dependencies=[Csrf])
def add_camera(restaurant_id: str, body: CameraIn, principal: ApiUser, db: Db) -> RestaurantOut:
    """Register a camera of a restaurant (admins); events from unregistered cameras are refused."""
    require_roles(principal, "admin")
    if not may_see_restaurant(db, principal.user, restaurant_id) or db.get(Restaurant, restaurant_id) is None:
        raise HTTPException(404, "no such restaurant")
    try:
        create_camera(db, restaurant_id, body.id, body.name, actor=principal.user.id)
    except AdminError as exc:
        raise HTTPException(409 if "already exists" in str(exc) else 422, str(exc)) from None
    db.commit()
    restaurant = db.get(Restaurant, restaurant_id)
    db.refresh(restaurant)
    assert restaurant is not None
    return _out(restaurant)
