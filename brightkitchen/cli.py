"""The one ``brightkitchen`` command; each part of the system contributes a sub-command group.

Groups import their heavy dependencies (torch, onnxruntime, SQLAlchemy) inside the commands, so that
``brightkitchen --help`` is fast and the edge box never imports training code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from brightkitchen import __version__
from brightkitchen.demo import app as demo_app
from brightkitchen.logs import setup_logging
from dashboard.cli import app as dashboard_app
from edge_agent.cli import app as edge_app
from training.cli import app as train_app

app = typer.Typer(
    name="brightkitchen",
    help=(
        "Bright Kitchen: recognise cutting-board misuse and stacked food containers on kitchen cameras, "
        "send alerts with evidence over MQTT, and review them on a central dashboard."
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
app.add_typer(edge_app, name="edge")
app.add_typer(dashboard_app, name="dashboard")
app.add_typer(train_app, name="train")
app.add_typer(demo_app, name="demo")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"brightkitchen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            envvar="BRIGHTKITCHEN_LOG_LEVEL",
            help="DEBUG, INFO, WARNING or ERROR (default INFO).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    try:
        setup_logging(log_level)
    except ValueError as exc:  # a bad --log-level or BRIGHTKITCHEN_LOG_LEVEL: a usage error, not a traceback
        raise typer.BadParameter(str(exc), param_hint="--log-level / BRIGHTKITCHEN_LOG_LEVEL") from None


@app.command("schema")
def schema(
    out: Annotated[Path, typer.Option("--out", help="Where to write the JSON Schema.")] = Path(
        "docs/mqtt-schema.json"
    ),
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if the file is not what would be written.")
    ] = False,
) -> None:
    """Export the MQTT contract (brightkitchen/contract.py) as JSON Schema, or check the exported file."""
    from brightkitchen.contract import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if check:
        current = out.read_text(encoding="utf-8") if out.is_file() else None
        if current != text:
            why = "does not exist" if current is None else "differs from brightkitchen/contract.py"
            typer.echo(f"{out} {why}; run `brightkitchen schema --out {out}` and commit it.", err=True)
            raise typer.Exit(1)
        typer.echo(f"{out} is up to date.")
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    typer.echo(f"wrote {out}")


def main() -> None:
    """Console-script entry point."""
    app()
