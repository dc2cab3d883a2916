"""Start and promote rollouts end to end: find the agents, move the rollout's state machine, commit, then
publish the commands over MQTT. The web routes and ``brightkitchen dashboard models`` both go through here,
so a rollout started from either behaves the same.

Example::

    rollout = begin_rollout(db, cfg, model, ["r-0001/box-1", "r-0002/box-1"], "https://dash.example.com")
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from dashboard.commands import CommandPublishError, publish_commands
from dashboard.config import DashboardConfig
from dashboard.models import Agent, ModelVersion, Rollout
from dashboard.rollout import Command, RolloutError, fail_to_send, promote, start_rollout


class UnknownAgent(RolloutError):
    """An agent id that is not ``restaurant/agent`` of an agent the dashboard knows."""


def download_url(base_url: str, model_id: int) -> str:
    """Where agents fetch a model's archive: ``base_url`` is how they reach the dashboard."""
    return f"{base_url.rstrip('/')}/api/v1/models/{model_id}/download"


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
        fail_to_send(rollout, commands, str(exc))
        db.commit()
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
        db,
        model,
        find_agents(db, agent_keys),
        download_url(base_url, model.id),
        cfg.registry.download_token_ttl_s,
        user_id,
    )
    _send(db, cfg, rollout, commands)
    return rollout


def promote_rollout(
    db: Session, cfg: DashboardConfig, rollout: Rollout, base_url: str, user_id: int | None = None
) -> list[Command]:
    """After a good canary: send the model to the rollout's other agents; committed. The commands sent.

    Raises ``RolloutError`` (not ``canary_ok``) or ``CommandPublishError``.
    """
    commands = promote(
        db, rollout, download_url(base_url, rollout.model_id), cfg.registry.download_token_ttl_s, user_id
    )
    _send(db, cfg, rollout, commands)
    return commands
