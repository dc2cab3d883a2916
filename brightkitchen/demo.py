"""``brightkitchen demo``: broker + dashboard + edge agent on a bundled sample clip, in one command."""

from __future__ import annotations

import typer

app = typer.Typer(help="One-command demo on embedded defaults.", no_args_is_help=True)
