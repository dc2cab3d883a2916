"""Start, promote and abort rollouts end to end: find the agents, move the rollout's state machine, commit,
then publish the commands over MQTT. The web routes and ``brightkitchen dashboard models`` both go through
here, so a rollout started from either behaves the same. A rollout that stops (aborted here, or failed by an
agent's reply in the ingest) sends the agents that had switched back to their previous model.

Example::

    rollout = begin_rollout(db, cfg, model, ["r-0001/box-1", "r-0002/box-1"], "https://dash.example.com")
    abort_rollout(db, cfg, rollout)
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import event, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dashboard.commands import CommandPublishError, publish_commands
from dashboard.config import DashboardConfig
from dashboard.ingest import IngestWorker
from dashboard.media import MediaStore
from dashboard.models import Agent, ModelVersion, Rollout
from dashboard.persist import Persister
from dashboard.rollout import (
    SWITCH_BACK_DUE,
    Command,
    RolloutError,
    abort,
    expire_overdue,
    fail_to_send,
    fail_to_send_back,
    promote,
    start_rollout,
    switch_back,
)

log = logging.getLogger(__name__)


class UnknownAgent(RolloutError):
    """An agent id that is not ``restaurant/agent`` of an agent the dashboard knows."""


def find_agents(db: Session, keys: list[str]) -> list[Agent]:
    """The agents named ``restaurant/agent``, in the order given."""
    agents = []
    for key in keys:
        restaurant, _, agent_id = key.partition("/")
        agent = db.scalar(select(Agent).where(Agent.restaurant_id == restaurant, Agent.agent_id == agent_id))
        if agent is None:
            raise UnknownAgent(f"unknown agent {key!r} (expected restaurant/agent of a known agent)")
        agents.append(agent)
    return agents


def _send(db: Session, cfg: DashboardConfig, rollout: Rollout, commands: list[Command]) -> None:
    """Commit, then publish; a broker failure fails the rollout (committed too) and is raised."""
    db.commit()
    try:
        publish_commands(cfg.mqtt, commands)
    except CommandPublishError as exc:
        fail_to_send(db, rollout, commands, str(exc))
        db.commit()
        with contextlib.suppress(CommandPublishError):  # the same broker: a refusal is on the targets
            send_switch_backs(db, cfg)  # a canary that switched before this promote
        raise CommandPublishError(f"rollout {rollout.id} failed: {exc}") from None


def begin_rollout(
    db: Session,
    cfg: DashboardConfig,
    model: ModelVersion,
    agent_keys: list[str],
    base_url: str,
    user_id: int | None = None,
) -> Rollout:
    """Roll ``model`` out to ``agent_keys`` (the first is the canary, sent ``switch_model`` now); committed.

    Raises ``UnknownAgent``, ``RolloutError`` (busy or repeated agents) or ``CommandPublishError``.
    """
    rollout, commands = start_rollout(
        db, model, find_agents(db, agent_keys), base_url, cfg.registry.download_token_ttl_s, user_id
    )
    _send(db, cfg, rollout, commands)
    return rollout


def promote_rollout(
    db: Session, cfg: DashboardConfig, rollout: Rollout, base_url: str, user_id: int | None = None
) -> list[Command]:
    """After a good canary: send the model to the rollout's other agents; committed. The commands sent.

    Raises ``RolloutError`` (not ``canary_ok``) or ``CommandPublishError``.
    """
    commands = promote(db, rollout, base_url, cfg.registry.download_token_ttl_s, user_id)
    _send(db, cfg, rollout, commands)
    return commands


def abort_rollout(db: Session, cfg: DashboardConfig, rollout: Rollout, user_id: int | None = None) -> None:
    """Stop an unfinished rollout and send its agents that switched back to their previous model; committed.

    Raises ``RolloutError`` (already done, failed or aborted) or ``CommandPublishError`` (the rollout is
    aborted all the same; the targets say the switch-back was not sent).
    """
    abort(db, rollout, user_id)
    try:
        send_switch_backs(db, cfg)
    except CommandPublishError as exc:
        raise CommandPublishError(
            f"rollout {rollout.id} aborted, but no agent was sent back: {exc}"
        ) from None


def send_switch_backs(db: Session, cfg: DashboardConfig) -> list[Command]:
    """Send every switch-back that is due, of any rollout (committed first); the commands sent.

    A broker failure marks them ``revert_failed`` (committed) and is raised.
    """
    commands = switch_back(db, cfg.registry.download_token_ttl_s)
    db.commit()
    if commands:
        try:
            publish_commands(cfg.mqtt, commands)
        except CommandPublishError as exc:
            fail_to_send_back(db, commands, str(exc))
            db.commit()
            raise
    return commands


def expire_overdue_rollouts(sessions: sessionmaker[Session], cfg: DashboardConfig) -> int:
    """Give up on rollout agents silent past ``registry.rollout_reply_timeout_s``, commit, and send back
    the agents whose rollout this stopped; how many targets were given up. The ingest runs it every minute.

    Raises ``CommandPublishError`` when the switch-backs could not be sent (they are ``revert_failed``).
    """
    with sessions() as db:
        given_up = expire_overdue(db, cfg.registry.rollout_reply_timeout_s)
        db.info.pop(SWITCH_BACK_DUE, None)  # sent right here, not by an after-commit hook
        db.commit()
        if given_up:
            log.warning("gave up on %d rollout target(s) that stopped answering", given_up)
            send_switch_backs(db, cfg)
    return given_up


def send_switch_backs_after_commit(sessions: sessionmaker[Session], cfg: DashboardConfig) -> None:
    """Make every session of ``sessions`` send the switch-backs that it made due, once it has committed.

    For the ingest, where agents' replies and stats fail rollouts (``dashboard.rollout`` flags the session
    with ``SWITCH_BACK_DUE``). A database error leaves them due, for the next rollout that stops.
    """

    def after_commit(session: Session) -> None:
        if not session.info.pop(SWITCH_BACK_DUE, False):
            return
        try:
            with sessions() as own:
                send_switch_backs(own, cfg)
        except (CommandPublishError, SQLAlchemyError) as exc:
            log.error("switch-back commands not sent: %s", exc)

    event.listen(sessions, "after_commit", after_commit)


def ingest_worker(
    sessions: sessionmaker[Session], cfg: DashboardConfig, store: MediaStore, client_id: str | None = None
) -> IngestWorker:
    """The dashboard's MQTT ingest worker, wired to rollouts: its sessions send the switch-backs they make
    due, and every minute it gives up on rollout agents that stopped answering."""
    send_switch_backs_after_commit(sessions, cfg)
    return IngestWorker(
        cfg.mqtt,
        Persister(sessions, store),
        client_id,
        housekeeping=lambda: expire_overdue_rollouts(sessions, cfg),
    )
