"""The ``--config`` option every ``brightkitchen dashboard`` command takes, and loading it for a command."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from dashboard.config import DashboardConfig

ConfigOpt = Annotated[
    Path,
    typer.Option("--config", "-c", help="dashboard YAML config", envvar="BRIGHTKITCHEN_DASHBOARD_CONFIG"),
]


def load_or_exit(config: Path) -> DashboardConfig:
    """The validated config; a bad file prints what is wrong (file, key) and exits 2."""
    from brightkitchen.config import ConfigError
    from dashboard.config import load_dashboard_config

    try:
        return load_dashboard_config(config)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
