"""Rollouts of a registry model to edge agents: the state machine, its commands and its download token.

A rollout sends ``switch_model`` to one canary agent first. When the canary replies ok and then reports the
new model in its stats with no camera errors, the rollout is ``canary_ok`` and may be promoted: the other
agents get the command too, and it is ``done`` once every one of them runs the model. Any agent that
refuses the command, fails to load the model or goes back to another model (its own automatic rollback)
fails the whole rollout: agents not yet sent the command are skipped.

The ingest feeds replies, availability and stats to ``observe_reply`` and ``observe_model``; the web
routes call ``start_rollout`` and ``promote``, then publish the returned commands.

Example::

    rollout, commands = start_rollout(db, model, agents, url, ttl_s=3600, user_id=7)
    publish_commands(cfg.mqtt, commands)
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from brightkitchen.contract import CommandMessage, ModelDownload, ModelRef, ReplyMessage, utc_now
from dashboard.admin import audit
from dashboard.models import Agent, ModelVersion, Rollout, RolloutTarget, now_utc

ACTIVE = ("sent", "switched", "running")  # targets whose agent may still change state
UNFINISHED = ("canary", "canary_ok", "rolling")
Command = tuple[str, str, CommandMessage]  # restaurant, agent, command


class RolloutError(ValueError):
    """A rollout action that is not possible now; the message says why."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token(rollout: Rollout, ttl_s: float) -> str:
    token = secrets.token_urlsafe(32)
    rollout.token_sha256 = token_digest(token)
    rollout.token_expires_at = now_utc() + timedelta(seconds=ttl_s)
    return token


def _send(db: Session, target: RolloutTarget, model: ModelVersion, url: str, token: str) -> Command:
    """Mark the target sent (and the agent's targets in older rollouts superseded); its command."""
    for old in db.scalars(
        select(RolloutTarget).where(
            RolloutTarget.restaurant_id == target.restaurant_id,
            RolloutTarget.agent_id == target.agent_id,
            RolloutTarget.state.in_(ACTIVE),
            RolloutTarget.id != target.id,
        )
    ):
        old.state, old.updated_at = "superseded", now_utc()
    target.state, target.sent_at, target.updated_at = "sent", now_utc(), now_utc()
    cmd = CommandMessage(
        command_id=target.command_id,
        issued_at=utc_now(),
        action="switch_model",
        model=ModelDownload(
            name=model.name, version=model.version, url=url, sha256=model.archive_sha256, token=token
        ),
    )
    return target.restaurant_id, target.agent_id, cmd


def start_rollout(
    db: Session, model: ModelVersion, agents: list[Agent], url: str, ttl_s: float, user_id: int | None
) -> tuple[Rollout, list[Command]]:
    """Create a rollout to ``agents`` (the first is the canary) and the canary's command; flushed."""
    if not agents:
        raise RolloutError("choose at least one agent")
    keys = [(a.restaurant_id, a.agent_id) for a in agents]
    if len(set(keys)) != len(keys):
        raise RolloutError("an agent is listed twice")
    busy = db.execute(
        select(RolloutTarget.restaurant_id, RolloutTarget.agent_id)
        .join(Rollout)
        .where(Rollout.state.in_(UNFINISHED), RolloutTarget.state.in_(("pending", *ACTIVE)))
    ).all()
    clash = sorted({f"{r}/{a}" for r, a in busy} & {f"{r}/{a}" for r, a in keys})
    if clash:
        raise RolloutError(f"already in an unfinished rollout: {', '.join(clash)}")
    rollout = Rollout(model=model, state="canary", created_by=user_id)
    token = _new_token(rollout, ttl_s)
    rollout.targets = [
        RolloutTarget(position=i, restaurant_id=r, agent_id=a, command_id=uuid.uuid4(), state="pending")
        for i, (r, a) in enumerate(keys)
    ]
    db.add(rollout)
    db.flush()
    audit(
        db,
        user_id,
        "start_rollout",
        "rollout",
        str(rollout.id),
        model=model.id,
        agents=[*map("/".join, keys)],
    )
    return rollout, [_send(db, rollout.targets[0], model, url, token)]


def promote(db: Session, rollout: Rollout, url: str, ttl_s: float, user_id: int | None) -> list[Command]:
    """After a good canary: send the command to every other agent (with a fresh download token)."""
    if rollout.state != "canary_ok":
        raise RolloutError(
            f"rollout {rollout.id} is {rollout.state}; only a canary_ok rollout can be promoted"
        )
    token = _new_token(rollout, ttl_s)
    commands = [_send(db, t, rollout.model, url, token) for t in rollout.targets if t.state == "pending"]
    _set(rollout, "rolling" if commands else "done", "promoted to all agents")
    audit(db, user_id, "promote_rollout", "rollout", str(rollout.id), agents=len(commands))
    return commands


def fail_to_send(rollout: Rollout, commands: list[Command], reason: str) -> None:
    """The commands never reached the broker: the rollout fails, nothing was switched."""
    sent = {cmd.command_id for _, _, cmd in commands}
    for target in rollout.targets:
        if target.command_id in sent:
            target.state, target.message = "failed", reason[:2000]
    _fail(rollout, f"commands not sent: {reason}")


def _set(rollout: Rollout, state: str, message: str) -> None:
    rollout.state, rollout.message, rollout.updated_at = state, message[:2000], now_utc()


def _fail(rollout: Rollout, message: str) -> None:
    if rollout.state == "failed":
        return  # the first failure is the one to read
    for target in rollout.targets:
        if target.state == "pending":
            target.state, target.updated_at = "skipped", now_utc()
    _set(rollout, "failed", message)


def _advance(rollout: Rollout) -> None:
    states = [t.state for t in rollout.targets]
    if rollout.state == "canary" and states[0] == "running":
        if len(states) == 1:
            _set(rollout, "done", "the canary runs the model; it was the only agent")
        else:
            _set(rollout, "canary_ok", "the canary runs the model without errors: ready to promote")
    elif rollout.state == "rolling" and all(s == "running" for s in states):
        _set(rollout, "done", "every agent runs the model")


def _same(ref: ModelRef | None, model: ModelVersion) -> bool:
    return ref is not None and (ref.name, ref.version) == (model.name, model.version)


def observe_reply(db: Session, msg: ReplyMessage) -> None:
    """An agent answered a command: move its rollout target (if it is one) along."""
    target = db.scalar(select(RolloutTarget).where(RolloutTarget.command_id == msg.command_id))
    if target is None or (target.restaurant_id, target.agent_id) != (msg.restaurant, msg.agent):
        return
    rollout, name = target.rollout, f"{msg.restaurant}/{msg.agent}"
    target.updated_at, target.message = now_utc(), msg.message[:2000]
    if msg.ok and _same(msg.model, rollout.model):
        target.switched_at = target.switched_at or msg.at
        if target.state == "sent":
            target.state = "switched"
        return
    target.state = "rolled_back" if target.state in ("switched", "running") else "failed"
    _fail(rollout, f"{name} {target.state.replace('_', ' ')}: {msg.message}")


def observe_model(
    db: Session,
    restaurant: str,
    agent: str,
    model: ModelRef | None,
    at: datetime | None,
    camera_errors: list[str] | None = None,
) -> None:
    """An agent reported its model (availability: ``camera_errors`` None; stats: the cameras' errors)."""
    targets = db.scalars(
        select(RolloutTarget).where(
            RolloutTarget.restaurant_id == restaurant,
            RolloutTarget.agent_id == agent,
            RolloutTarget.state.in_(ACTIVE),
        )
    )
    for target in targets:
        rollout = target.rollout
        if _same(model, rollout.model):
            if camera_errors is None or target.state == "running":
                continue
            if camera_errors:
                target.message = f"camera errors: {'; '.join(camera_errors)}"[:2000]
                continue
            target.state, target.updated_at = "running", now_utc()
            _advance(rollout)
        elif target.switched_at is not None and at is not None and at > target.switched_at:
            target.state, target.updated_at = "rolled_back", now_utc()
            ref = f"{model.name} {model.version}" if model else "no model"
            target.message = f"reports {ref} after switching"
            _fail(rollout, f"{restaurant}/{agent} went back to {ref}")


def rollout_for_token(db: Session, token: str) -> Rollout | None:
    """The rollout a download token belongs to (expired or not), or None."""
    return db.scalar(select(Rollout).where(Rollout.token_sha256 == token_digest(token)))
