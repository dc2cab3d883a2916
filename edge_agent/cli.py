"""``brightkitchen edge``: run the agent beside the cameras, or replay a video file through it."""

from __future__ import annotations

import typer

app = typer.Typer(help="Edge agent: cameras → detector → rules → alerts over MQTT.", no_args_is_help=True)
