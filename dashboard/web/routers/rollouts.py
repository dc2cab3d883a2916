"""Rollouts: send a registry model to chosen agents (canary first), promote to all, abort, follow their state.

Starting, promoting and aborting need the ML or admin role; the commands go out over MQTT with the
dashboard's broker login, and each carries a download URL on this dashboard with a bearer token. Aborting
sends the agents that had switched back to the model they ran before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from dashboard.commands import CommandPublishError
from dashboard.deploy import UnknownAgent, abort_rollout, begin_rollout, promote_rollout
from dashboard.models import ModelVersion, Rollout
from dashboard.rollout import RolloutError
from dashboard.web.auth import ApiUser, Csrf, Db, PageUser, Principal, require_roles
from dashboard.web.routers.models import EDIT_ROLES, RolloutOut, rollout_out

router = APIRouter()


class RolloutIn(BaseModel):
    agents: list[str] = Field(
        min_length=1,
        description='"restaurant/agent" ids; the first one is the canary',
        examples=[["r-1/box-1"]],
    )


def _base_url(request: Request) -> str:
    return request.app.state.cfg.http.public_url or str(request.base_url)


def _start(request: Request, db: Session, principal: Principal, model_id: int, agents: list[str]) -> Rollout:
    """404 (model), 422 (unknown agent), 409 (busy or repeated agent), 502 (broker)."""
    require_roles(principal, *EDIT_ROLES)
    model = db.get(ModelVersion, model_id)
    if model is None:
        raise HTTPException(404, "no such model")
    try:
        return begin_rollout(db, request.app.state.cfg, model, agents, _base_url(request), principal.user.id)
    except UnknownAgent as exc:
        raise HTTPException(422, str(exc)) from None
    except RolloutError as exc:
        raise HTTPException(409, str(exc)) from None
    except CommandPublishError as exc:
        raise HTTPException(502, str(exc)) from None


def _act(db: Session, principal: Principal, rollout_id: int, act: Callable[[Rollout], object]) -> Rollout:
    """One step on an existing rollout: 404 (rollout), 409 (not allowed in its state), 502 (broker)."""
    require_roles(principal, *EDIT_ROLES)
    rollout = db.get(Rollout, rollout_id)
    if rollout is None:
        raise HTTPException(404, "no such rollout")
    try:
        act(rollout)
    except RolloutError as exc:
        raise HTTPException(409, str(exc)) from None
    except CommandPublishError as exc:
        raise HTTPException(502, str(exc)) from None
    return rollout


def _promote(request: Request, db: Session, principal: Principal, rollout_id: int) -> Rollout:
    """409 unless canary_ok."""
    cfg, base = request.app.state.cfg, _base_url(request)
    return _act(db, principal, rollout_id, lambda r: promote_rollout(db, cfg, r, base, principal.user.id))


def _abort(request: Request, db: Session, principal: Principal, rollout_id: int) -> Rollout:
    """409 when done, failed or aborted already; 502 (broker): aborted, nobody sent back."""
    cfg = request.app.state.cfg
    return _act(db, principal, rollout_id, lambda r: abort_rollout(db, cfg, r, principal.user.id))


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
    _start(request, db, principal, model_id, chosen)
    return RedirectResponse(f"/models/{model_id}", status_code=303)


@router.post("/rollouts/{rollout_id}/promote", include_in_schema=False, dependencies=[Csrf])
def promote_form(request: Request, rollout_id: int, principal: PageUser, db: Db) -> RedirectResponse:
    rollout = _promote(request, db, principal, rollout_id)
    return RedirectResponse(f"/models/{rollout.model_id}", status_code=303)


@router.post("/rollouts/{rollout_id}/abort", include_in_schema=False, dependencies=[Csrf])
def abort_form(request: Request, rollout_id: int, principal: PageUser, db: Db) -> RedirectResponse:
    rollout = _abort(request, db, principal, rollout_id)
    return RedirectResponse(f"/models/{rollout.model_id}", status_code=303)


@router.post("/api/v1/models/{model_id}/rollouts", status_code=201, tags=["rollouts"], dependencies=[Csrf])
def rollout_api(request: Request, model_id: int, body: RolloutIn, principal: ApiUser, db: Db) -> RolloutOut:
    """Roll a model out: the first agent gets ``switch_model`` now, the others on promote (admins, ML)."""
    return rollout_out(_start(request, db, principal, model_id, body.agents))


@router.post("/api/v1/rollouts/{rollout_id}/promote", tags=["rollouts"], dependencies=[Csrf])
def promote_api(request: Request, rollout_id: int, principal: ApiUser, db: Db) -> RolloutOut:
    """After a good canary (state canary_ok): send the model to every other agent of the rollout."""
    return rollout_out(_promote(request, db, principal, rollout_id))


@router.post("/api/v1/rollouts/{rollout_id}/abort", tags=["rollouts"], dependencies=[Csrf])
def abort_api(request: Request, rollout_id: int, principal: ApiUser, db: Db) -> RolloutOut:
    """Stop an unfinished rollout: nothing more is sent, and the agents that had switched are sent back to
    the model they ran before (state aborted; admins, ML)."""
    return rollout_out(_abort(request, db, principal, rollout_id))


@router.get("/api/v1/rollouts/{rollout_id}", tags=["rollouts"])
def get_rollout(rollout_id: int, principal: ApiUser, db: Db) -> RolloutOut:
    """A rollout's state and each agent's (canary first; admins, ML)."""
    require_roles(principal, *EDIT_ROLES)
    rollout = db.get(Rollout, rollout_id)
    if rollout is None:
        raise HTTPException(404, "no such rollout")
    return rollout_out(rollout)
