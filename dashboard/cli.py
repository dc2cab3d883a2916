"""``brightkitchen dashboard``: the central ingest worker, web UI and admin commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="Central dashboard: MQTT ingest, review UI, REST API, admin.", no_args_is_help=True)
