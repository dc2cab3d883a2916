"""Camera and agent health: online/offline, last seen, fps, inference time, model version."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.models import Agent, Camera, User, now_utc
from dashboard.web.auth import ApiUser, Db, PageUser
from dashboard.web.scope import restaurant_filter

router = APIRouter()
STALE_AFTER = timedelta(minutes=2)  # no stats for this long: the agent is shown as stale


class AgentOut(BaseModel):
    restaurant: str
    agent: str
    status: str
    last_seen_at: datetime | None
    software_version: str | None
    model_name: str | None
    model_version: str | None
    outbox_depth: int | None


class CameraOut(BaseModel):
    restaurant: str
    camera: str
    name: str
    agent: str | None
    online: bool | None
    fps: float | None
    inference_ms: float | None
    last_frame_at: datetime | None
    last_stats_at: datetime | None
    error: str | None


class Health(BaseModel):
    agents: list[AgentOut]
    cameras: list[CameraOut]


def compute_health(db: Session, user: User) -> Health:
    now = now_utc()
    agents = []
    for a in db.scalars(
        select(Agent)
        .where(restaurant_filter(user, Agent.restaurant_id))
        .order_by(Agent.restaurant_id, Agent.agent_id)
    ):
        status = a.status
        if status == "online" and (a.last_seen_at is None or now - a.last_seen_at > STALE_AFTER):
            status = "stale"
        agents.append(
            AgentOut(
                restaurant=a.restaurant_id,
                agent=a.agent_id,
                status=status,
                last_seen_at=a.last_seen_at,
                software_version=a.software_version,
                model_name=a.model_name,
                model_version=a.model_version,
                outbox_depth=a.outbox_depth,
            )
        )
    cameras = [
        CameraOut(
            restaurant=c.restaurant_id,
            camera=c.camera_id,
            name=c.name,
            agent=c.agent_id,
            online=c.online,
            fps=c.fps,
            inference_ms=c.inference_ms,
            last_frame_at=c.last_frame_at,
            last_stats_at=c.last_stats_at,
            error=c.error,
        )
        for c in db.scalars(
            select(Camera)
            .where(restaurant_filter(user, Camera.restaurant_id))
            .order_by(Camera.restaurant_id, Camera.camera_id)
        )
    ]
    return Health(agents=agents, cameras=cameras)


@router.get("/health", response_class=HTMLResponse, include_in_schema=False)
def health_page(request: Request, principal: PageUser, db: Db) -> HTMLResponse:
    return request.app.state.templates.TemplateResponse(
        request, "health/index.html", {"h": compute_health(db, principal.user)}
    )


@router.get("/api/v1/health", tags=["health"])
def health_api(principal: ApiUser, db: Db) -> Health:
    """Agents and cameras the caller may see."""
    return compute_health(db, principal.user)
