"""Engine and sessions: SQLite in WAL mode by default, PostgreSQL (optionally in its own schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from dashboard.config import DashboardConfig


def make_engine(url: str, schema: str | None = None, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and foreign keys, PostgreSQL a search_path."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        connect_args = {"options": f"-csearch_path={schema}"} if schema else {}
        return create_engine(url, connect_args=connect_args, pool_pre_ping=True, **kwargs)
    raise ValueError(f"database_url {url!r}: only sqlite and postgresql are supported")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def open_database(cfg: DashboardConfig, migrate: bool | None = None) -> tuple[Engine, sessionmaker[Session]]:
    """Engine and session factory for a config, upgraded to the newest schema if ``auto_migrate``."""
    from dashboard import migrate as migrations

    engine = make_engine(cfg.database_url, cfg.database_schema)
    if cfg.auto_migrate if migrate is None else migrate:
        migrations.upgrade(engine, cfg.database_schema)
    return engine, make_sessionmaker(engine)
