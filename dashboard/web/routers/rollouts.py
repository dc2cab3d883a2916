"""Rollouts: send a registry model to chosen agents (canary first), promote to all, follow their state.

Starting and promoting need the ML or admin role; the commands go out over MQTT with the dashboard's
broker login, and each carries a download URL on this dashboard with the rollout's bearer token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.commands import CommandPublishError, publish_commands
from dashboard.models import Agent, ModelVersion, Rollout
from dashboard.rollout import Command, RolloutError, fail_to_send, promote, start_rollout
from dashboard.web.auth import ApiUser, Csrf, Db, PageUser, Principal, require_roles
from dashboard.web.routers.models import EDIT_ROLES, RolloutOut, rollout_out

router = APIRouter()


class RolloutIn(BaseModel):
    agents: list[str] = Field(
        min_length=1,
        description='"restaurant/agent" ids; the first one is the canary',
        examples=[["r-1/box-1"]],
    )


def _download_url(request: Request, model_id: int) -> str:
    base = request.app.state.cfg.http.public_url or str(request.base_url).rstrip("/")
    return f"{base}/api/v1/models/{model_id}/download"


def _publish(request: Request, db: Session, rollout: Rollout, commands: list[Command]) -> None:
    """Commit, then send; a broker failure fails the rollout (and is committed too) and answers 502."""
    db.commit()
    try:
        publish_commands(request.app.state.cfg.mqtt, commands)
    except CommandPublishError as exc:
        fail_to_send(rollout, commands, str(exc))
        db.commit()
        raise HTTPException(502, f"rollout {rollout.id} failed: {exc}") from None


def begin(request: Request, db: Session, principal: Principal, model_id: int, agents: list[str]) -> Rollout:
    require_roles(principal, *EDIT_ROLES)
    model = db.get(ModelVersion, model_id)
    if model is None:
        raise HTTPException(404, "no such model")
    chosen = []
    for key in agents:
        restaurant, _, agent_id = key.partition("/")
        agent = db.scalar(select(Agent).where(Agent.restaurant_id == restaurant, Agent.agent_id == agent_id))
        if agent is None:
            raise HTTPException(422, f"unknown agent {key!r} (expected restaurant/agent of a known agent)")
        chosen.append(agent)
    cfg = request.app.state.cfg
    try:
        rollout, commands = start_rollout(
            db,
            model,
            chosen,
            _download_url(request, model_id),
            cfg.registry.download_token_ttl_s,
            principal.user.id,
        )
    except RolloutError as exc:
        raise HTTPException(409, str(exc)) from None
    _publish(request, db, rollout, commands)
    return rollout


def promote_rollout(request: Request, db: Session, principal: Principal, rollout_id: int) -> Rollout:
    require_roles(principal, *EDIT_ROLES)
    rollout = db.get(Rollout, rollout_id)
    if rollout is None:
        raise HTTPException(404, "no such rollout")
    cfg = request.app.state.cfg
    try:
        commands = promote(
            db,
            rollout,
            _download_url(request, rollout.model_id),
            cfg.registry.download_token_ttl_s,
            principal.user.id,
        )
    except RolloutError as exc:
        raise HTTPException(409, str(exc)) from None
    _publish(request, db, rollout, commands)
    return rollout


@router.post("/models/{model_id}/rollouts", include_in_schema=False, dependencies=[Csrf])
def rollout_form(
    request: Request,
    model_id: int,
    principal: PageUser,
    db: Db,
    canary: Annotated[str, Form()],
    agents: Annotated[list[str] | None, Form()] = None,
) -> RedirectResponse:
    chosen = [canary, *(a for a in agents or [] if a != canary)]
    begin(request, db, principal, model_id, chosen)
    return RedirectResponse(f"/models/{model_id}", status_code=303)


@router.post("/rollouts/{rollout_id}/promote", include_in_schema=False, dependencies=[Csrf])
def promote_form(request: Request, rollout_id: int, principal: PageUser, db: Db) -> RedirectResponse:
    rollout = promote_rollout(request, db, principal, rollout_id)
    return RedirectResponse(f"/models/{rollout.model_id}", status_code=303)


@router.post("/api/v1/models/{model_id}/rollouts", status_code=201, tags=["rollouts"], dependencies=[Csrf])
def rollout_api(request: Request, model_id: int, body: RolloutIn, principal: ApiUser, db: Db) -> RolloutOut:
    """Roll a model out: the first agent gets ``switch_model`` now, the others on promote (admins, ML)."""
    return rollout_out(begin(request, db, principal, model_id, body.agents))


@router.post("/api/v1/rollouts/{rollout_id}/promote", tags=["rollouts"], dependencies=[Csrf])
def promote_api(request: Request, rollout_id: int, principal: ApiUser, db: Db) -> RolloutOut:
    """After a good canary (state canary_ok): send the model to every other agent of the rollout."""
    return rollout_out(promote_rollout(request, db, principal, rollout_id))


@router.get("/api/v1/rollouts/{rollout_id}", tags=["rollouts"])
def get_rollout(rollout_id: int, principal: ApiUser, db: Db) -> RolloutOut:
    """A rollout's state and each agent's (canary first; admins, ML)."""
    require_roles(principal, *EDIT_ROLES)
    rollout = db.get(Rollout, rollout_id)
    if rollout is None:
        raise HTTPException(404, "no such rollout")
    return rollout_out(rollout)
