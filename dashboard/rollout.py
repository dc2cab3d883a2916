"""Rollouts of a registry model to edge agents: the state machine, its commands and its download token.

A rollout sends ``switch_model`` to one canary agent first. When the canary replies ok and then reports the
new model in its stats with no camera errors, the rollout is ``canary_ok`` and may be promoted: the other
agents get the command too, and it is ``done`` once every one of them runs the model. Any agent that
refuses the command, fails to load the model or goes back to another model (its own automatic rollback)
fails the whole rollout, and ``abort`` stops it by hand: agents not yet sent the command are skipped, and
those that had switched (then, or later) are due to switch back to the model they ran before.
``switch_back`` turns the due ones into ``switch_model`` commands for that model, each with its own token.

An agent that never answers must not hold a rollout forever: ``expire_overdue`` (run by the ingest every
minute) fails a target sent a command and not answering within the reply timeout (the rollout stops), stops
the rollout of a target that switched but has not run the model without camera errors within it (that
agent is sent back), and marks a switch-back unanswered within it ``revert_failed``.

The ingest feeds replies, availability and stats to ``observe_reply`` and ``observe_model``, which flag
their session (``SWITCH_BACK_DUE`` in ``Session.info``) when they make a switch-back due; ``dashboard.deploy``
calls the rest, commits, then publishes the returned commands.

Example::

    rollout, commands = start_rollout(db, model, agents, base_url, ttl_s=3600, user_id=7)
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
from dashboard.models import Agent, ModelVersion, Rollout, RolloutTarget, SwitchBack, now_utc
from dashboard.registry import find_model

ACTIVE = ("sent", "switched", "running")  # targets whose agent may still change state
UNFINISHED = ("canary", "canary_ok", "rolling")
STOPPED = ("failed", "aborted")  # stopped while unfinished: its agents that switched go back
SWITCHING_BACK = ("revert_due", "reverting", "reverted", "revert_failed")
SWITCH_BACK_DUE = "rollout_switch_back_due"  # Session.info key: this transaction made a switch-back due
Command = tuple[str, str, CommandMessage]  # restaurant, agent, command


class RolloutError(ValueError):
    """A rollout action that is not possible now; the message says why."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def download_url(base_url: str, model_id: int) -> str:
    """Where agents fetch a model's archive: ``base_url`` is how they reach the dashboard."""
    return f"{base_url.rstrip('/')}/api/v1/models/{model_id}/download"


def _new_token(rollout: Rollout, ttl_s: float) -> str:
    token = secrets.token_urlsafe(32)
    rollout.token_sha256 = token_digest(token)
    rollout.token_expires_at = now_utc() + timedelta(seconds=ttl_s)
    return token


def _switch_command(command_id: uuid.UUID, model: ModelVersion, base_url: str, token: str) -> CommandMessage:
    url = download_url(base_url, model.id)
    return CommandMessage(
        command_id=command_id,
        issued_at=utc_now(),
        action="switch_model",
        model=ModelDownload(
            name=model.name, version=model.version, url=url, sha256=model.archive_sha256, token=token
        ),
    )


def _send(db: Session, target: RolloutTarget, model: ModelVersion, base_url: str, token: str) -> Command:
    """Mark the target sent (and the agent's targets in older rollouts superseded, a switch-back not yet
    sent included: it would undo this one); its command."""
    for old in db.scalars(
        select(RolloutTarget).where(
            RolloutTarget.restaurant_id == target.restaurant_id,
            RolloutTarget.agent_id == target.agent_id,
            RolloutTarget.state.in_((*ACTIVE, "revert_due")),
            RolloutTarget.id != target.id,
        )
    ):
        old.state, old.updated_at = "superseded", now_utc()
    target.state, target.sent_at, target.updated_at = "sent", now_utc(), now_utc()
    cmd = _switch_command(target.command_id, model, base_url, token)
    return target.restaurant_id, target.agent_id, cmd


def start_rollout(
    db: Session, model: ModelVersion, agents: list[Agent], base_url: str, ttl_s: float, user_id: int | None
) -> tuple[Rollout, list[Command]]:
    """Create a rollout to ``agents`` (the first is the canary) and the canary's command; flushed.

    Each target records the agent's current model: the one it is sent back to if the rollout stops.
    """
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
    rollout = Rollout(model=model, state="canary", created_by=user_id, base_url=base_url)
    token = _new_token(rollout, ttl_s)
    rollout.targets = [
        RolloutTarget(
            position=i,
            restaurant_id=a.restaurant_id,
            agent_id=a.agent_id,
            command_id=uuid.uuid4(),
            state="pending",
            previous_model_name=a.model_name,
            previous_model_version=a.model_version,
        )
        for i, a in enumerate(agents)
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
    return rollout, [_send(db, rollout.targets[0], model, base_url, token)]


def promote(db: Session, rollout: Rollout, base_url: str, ttl_s: float, user_id: int | None) -> list[Command]:
    """After a good canary: send the command to every other agent (with a fresh download token)."""
    if rollout.state != "canary_ok":
        raise RolloutError(
            f"rollout {rollout.id} is {rollout.state}; only a canary_ok rollout can be promoted"
        )
    token = _new_token(rollout, ttl_s)
    rollout.base_url = base_url
    commands = [_send(db, t, rollout.model, base_url, token) for t in rollout.targets if t.state == "pending"]
    _set(rollout, "rolling" if commands else "done", "promoted to all agents")
    audit(db, user_id, "promote_rollout", "rollout", str(rollout.id), agents=len(commands))
    return commands


def abort(db: Session, rollout: Rollout, user_id: int | None) -> None:
    """Stop an unfinished rollout by hand: nothing more is sent, the agents that switched are due back."""
    if rollout.state not in UNFINISHED:
        raise RolloutError(
            f"rollout {rollout.id} is {rollout.state}; only an unfinished rollout "
            f"({', '.join(UNFINISHED)}) can be aborted"
        )
    due = _stop(db, rollout, "aborted", "aborted by hand")
    audit(db, user_id, "abort_rollout", "rollout", str(rollout.id), switch_back=due)


def fail_to_send(db: Session, rollout: Rollout, commands: list[Command], reason: str) -> None:
    """The commands never reached the broker: the rollout fails; agents that switched before are due back."""
    sent = {cmd.command_id for _, _, cmd in commands}
    for target in rollout.targets:
        if target.command_id in sent:
            target.state, target.message = "failed", reason[:2000]
    _stop(db, rollout, "failed", f"commands not sent: {reason}")


def _set(rollout: Rollout, state: str, message: str) -> None:
    rollout.state, rollout.message, rollout.updated_at = state, message[:2000], now_utc()


def _due(db: Session, target: RolloutTarget) -> None:
    target.state, target.updated_at = "revert_due", now_utc()
    db.info[SWITCH_BACK_DUE] = True


def _stop(db: Session, rollout: Rollout, state: str, message: str) -> int:
    """End an unfinished rollout (failed or aborted) and expire its download token; how many agents are due
    to switch back. A stopped rollout keeps its first reason; a done one stays done (an agent going back
    later is its own target's news, not a reason to send every other agent back)."""
    if rollout.state not in UNFINISHED:
        return 0
    due = 0
    for target in rollout.targets:
        if target.state == "pending":
            target.state, target.updated_at = "skipped", now_utc()
        elif target.state in ("switched", "running"):
            _due(db, target)
            due += 1
    rollout.token_expires_at = min(rollout.token_expires_at, now_utc())
    back = f"; {due} agent(s) that had switched are sent back to their previous model" if due else ""
    _set(rollout, state, message + back)
    return due


def _way_back(db: Session, target: RolloutTarget) -> tuple[ModelVersion, str]:
    """The registry entry the agent ran when its rollout started, and where to download it; or a
    ``RolloutError`` that says why not and what to do instead."""
    name, version = target.previous_model_name, target.previous_model_version
    if name is None or version is None:
        raise RolloutError("the agent reported no model when the rollout started")
    previous = find_model(db, name, version)
    if previous is None:
        raise RolloutError(
            f"{name} {version} is not in the registry: upload it and roll it out to this agent"
        )
    if target.rollout.base_url is None:
        raise RolloutError(
            f"the rollout predates revision 0005 (no download address): roll {name} {version} out"
        )
    return previous, target.rollout.base_url


def switch_back(db: Session, ttl_s: float) -> list[Command]:
    """Commands that send every ``revert_due`` agent back to the model it ran before its rollout; flushed.

    Each gets a ``SwitchBack`` with its own download token; a target with no way back is ``revert_failed``.
    """
    due = select(RolloutTarget).where(RolloutTarget.state == "revert_due").with_for_update(skip_locked=True)
    commands = []
    for target in db.scalars(due).all():
        target.updated_at = now_utc()
        try:
            previous, base_url = _way_back(db, target)
        except RolloutError as exc:
            target.state, target.message = "revert_failed", f"cannot switch back: {exc}"
            continue
        token = secrets.token_urlsafe(32)
        back = SwitchBack(
            target=target,
            model=previous,
            command_id=uuid.uuid4(),
            token_sha256=token_digest(token),
            token_expires_at=now_utc() + timedelta(seconds=ttl_s),
        )
        db.add(back)
        target.state = "reverting"
        cmd = _switch_command(back.command_id, previous, base_url, token)
        commands.append((target.restaurant_id, target.agent_id, cmd))
    db.flush()
    return commands


def fail_to_send_back(db: Session, commands: list[Command], reason: str) -> None:
    """The switch-back commands never reached the broker: their targets are ``revert_failed``."""
    ids = [cmd.command_id for _, _, cmd in commands]
    for back in db.scalars(select(SwitchBack).where(SwitchBack.command_id.in_(ids))):
        back.target.state, back.target.updated_at = "revert_failed", now_utc()
        back.target.message = f"switch back not sent: {reason}"[:2000]


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
    """An agent answered a command: move its rollout target (if it is one, or its switch-back) along."""
    target = db.scalar(select(RolloutTarget).where(RolloutTarget.command_id == msg.command_id))
    if target is None:
        back = db.scalar(select(SwitchBack).where(SwitchBack.command_id == msg.command_id))
        if back is not None:
            _observe_switch_back(back, msg)
        return
    if (target.restaurant_id, target.agent_id) != (msg.restaurant, msg.agent):
        return
    if target.state in SWITCHING_BACK:
        return  # the switch-back's own reply is the one that counts now
    rollout, name = target.rollout, f"{msg.restaurant}/{msg.agent}"
    target.updated_at, target.message = now_utc(), msg.message[:2000]
    if msg.ok and _same(msg.model, rollout.model):
        target.switched_at = target.switched_at or msg.at
        if rollout.state in STOPPED and target.state in (*ACTIVE, "failed"):
            _due(db, target)  # it switched after the rollout stopped (or the broker took a failed send)
        elif target.state == "sent":
            target.state = "switched"
        return
    target.state = "rolled_back" if target.state in ("switched", "running") else "failed"
    _stop(db, rollout, "failed", f"{name} {target.state.replace('_', ' ')}: {msg.message}")


def _observe_switch_back(back: SwitchBack, msg: ReplyMessage) -> None:
    target = back.target
    if (target.restaurant_id, target.agent_id) != (msg.restaurant, msg.agent):
        return
    if target.state in ("reverting", "reverted", "revert_failed"):
        target.state = "reverted" if msg.ok and _same(msg.model, back.model) else "revert_failed"
        target.message, target.updated_at = msg.message[:2000], now_utc()


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
        if _same(model, rollout.model) and rollout.state in STOPPED:
            _due(db, target)  # it switched after the rollout stopped
        elif _same(model, rollout.model):
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
            _stop(db, rollout, "failed", f"{restaurant}/{agent} went back to {ref}")


def expire_overdue(db: Session, reply_timeout_s: float) -> int:
    """Give up on agents silent for ``reply_timeout_s`` (see the module's docstring); how many; flushed."""
    cutoff = now_utc() - timedelta(seconds=reply_timeout_s)
    late = f"no answer within {reply_timeout_s / 60:g} min"
    overdue = select(RolloutTarget).where(
        ((RolloutTarget.state == "sent") & (RolloutTarget.sent_at < cutoff))
        | (RolloutTarget.state.in_(("switched", "reverting")) & (RolloutTarget.updated_at < cutoff))
    )
    targets = db.scalars(overdue.with_for_update(skip_locked=True)).all()
    for target in targets:
        name = f"{target.restaurant_id}/{target.agent_id}"
        if target.state == "reverting":
            target.state, target.message = "revert_failed", f"switch back: {late}"
        elif target.state == "sent":
            target.state, target.message = "failed", f"switch_model: {late}"
            _stop(db, target.rollout, "failed", f"{name}: {late} to switch_model")
        else:  # switched, never seen running without camera errors: _stop sends it back
            target.message = f"not running without camera errors after {reply_timeout_s / 60:g} min"
            _stop(db, target.rollout, "failed", f"{name} {target.message}")
        target.updated_at = now_utc()
    db.flush()
    return len(targets)


def download_grant(db: Session, token: str) -> tuple[int, datetime] | None:
    """What a download token fetches and until when (a rollout's or a switch-back's), or None."""
    digest = token_digest(token)
    rollout = db.scalar(select(Rollout).where(Rollout.token_sha256 == digest))
    if rollout is not None:
        return rollout.model_id, rollout.token_expires_at
    back = db.scalar(select(SwitchBack).where(SwitchBack.token_sha256 == digest))
    return (back.model_id, back.token_expires_at) if back is not None else None
