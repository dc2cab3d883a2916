"""Database migrations, shipped inside the package so an installed dashboard can upgrade itself.

``alembic`` needs no ini file here; ``make_revision`` is for developers changing ``models.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines are plugin chatter

from alembic import command  # noqa: E402
from alembic.config import Config  # noqa: E402
from sqlalchemy import Engine, inspect, text  # noqa: E402

SCRIPT_LOCATION = "dashboard:migrations"
log = logging.getLogger(__name__)


def _alembic_config(connection: object) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, schema: str | None = None, revision: str = "head") -> None:
    """Bring the database to ``revision`` (creating the PostgreSQL schema first where one is configured)."""
    if schema and engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    before = current_revision(engine)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)
    after = current_revision(engine)
    if after != before:
        log.info("database upgraded from revision %s to %s", before, after)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def make_revision(engine: Engine, message: str) -> None:
    """Autogenerate the next numbered migration (``0003_...``) from the difference between ``models.py``
    and ``engine``'s database, which must be at the newest revision."""
    versions = Path(__file__).parent / "migrations" / "versions"
    numbers = [int(p.name[:4]) for p in versions.glob("[0-9][0-9][0-9][0-9]_*.py")]
    rev_id = f"{max(numbers, default=0) + 1:04d}"
    with engine.begin() as conn:
        command.revision(_alembic_config(conn), message=message, autogenerate=True, rev_id=rev_id)
