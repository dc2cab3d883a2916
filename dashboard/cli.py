"""``brightkitchen dashboard``: the central ingest worker, web UI and admin commands.

A single-box start::

    brightkitchen dashboard add-restaurant --config configs/dashboard.yaml r-0001 --name "Noodle House" \
        --district Jianghan
    brightkitchen dashboard add-camera --config configs/dashboard.yaml r-0001 cam-1
    brightkitchen dashboard add-user --config configs/dashboard.yaml inspector1 --role inspector \
        --district Jianghan --password-env BK_PASSWORD
    brightkitchen dashboard serve --config configs/dashboard.yaml --with-ingest

ML staff roll models out with ``brightkitchen dashboard models upload|list|rollout|promote``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from dashboard.cli_config import ConfigOpt, load_or_exit
from dashboard.registry_cli import app as models_app

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")

app = typer.Typer(help="Central dashboard: MQTT ingest, review UI, REST API, admin.", no_args_is_help=True)
app.add_typer(models_app, name="models")

ExistOk = Annotated[bool, typer.Option("--exist-ok", help="succeed without changes if it already exists")]


def _admin(config: Path, action: Callable[[Session], T]) -> T:
    """Run ``action(session)`` in one transaction; AdminError becomes a clean message and exit 1."""
    from dashboard.admin import AdminError
    from dashboard.db import open_database

    _, sessions = open_database(load_or_exit(config))
    try:
        with sessions.begin() as session:
            return action(session)
    except AdminError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def _stop_event() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop


@app.command()
def migrate(config: ConfigOpt) -> None:
    """Create or upgrade the database schema to the newest revision."""
    from dashboard.db import make_engine
    from dashboard.migrate import current_revision, upgrade

    cfg = load_or_exit(config)
    engine = make_engine(cfg.database_url, cfg.database_schema)
    upgrade(engine, cfg.database_schema)
    typer.echo(f"database at revision {current_revision(engine)}")


@app.command()
def ingest(
    config: ConfigOpt,
    client_id: Annotated[str | None, typer.Option(help="override mqtt.client_id (one per worker)")] = None,
) -> None:
    """Run an MQTT ingest worker until SIGINT/SIGTERM."""
    from dashboard.db import open_database
    from dashboard.deploy import ingest_worker
    from dashboard.media import open_store

    cfg = load_or_exit(config)
    _, sessions = open_database(cfg)
    ingest_worker(sessions, cfg, open_store(cfg.media), client_id).run_forever(_stop_event())


@app.command()
def serve(
    config: ConfigOpt,
    with_ingest: Annotated[bool, typer.Option(help="also run an ingest worker in this process")] = False,
    host: Annotated[str | None, typer.Option(help="override http.host")] = None,
    port: Annotated[int | None, typer.Option(help="override http.port")] = None,
) -> None:
    """Serve the web UI and REST API (OpenAPI at /docs)."""
    import uvicorn

    from dashboard.web.app import create_app

    cfg = load_or_exit(config)
    web = create_app(cfg, with_ingest=with_ingest)
    uvicorn.run(web, host=host or cfg.http.host, port=port or cfg.http.port, proxy_headers=False)


@app.command("add-restaurant")
def add_restaurant(
    config: ConfigOpt,
    restaurant_id: Annotated[str, typer.Argument(help="contract id, also its MQTT username")],
    name: Annotated[str, typer.Option(help="display name")] = "",
    district: Annotated[
        str, typer.Option(help="administrative district (inspectors are assigned by it)")
    ] = "",
    address: Annotated[str, typer.Option()] = "",
    exist_ok: ExistOk = False,
) -> None:
    """Register a restaurant."""
    from dashboard.admin import create_restaurant
    from dashboard.models import Restaurant

    def action(s: Session) -> str:
        if exist_ok and s.get(Restaurant, restaurant_id) is not None:
            return "exists"
        create_restaurant(s, restaurant_id, name, district, address)
        return "created"

    typer.echo(f"restaurant {restaurant_id} {_admin(config, action)}")


@app.command("add-camera")
def add_camera(
    config: ConfigOpt,
    restaurant_id: Annotated[str, typer.Argument()],
    camera_id: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Option()] = "",
    exist_ok: ExistOk = False,
) -> None:
    """Register a camera of a restaurant (events from unregistered cameras are refused)."""
    from sqlalchemy import select

    from dashboard.admin import create_camera
    from dashboard.models import Camera

    def action(s: Session) -> str:
        found = s.scalar(
            select(Camera).where(Camera.restaurant_id == restaurant_id, Camera.camera_id == camera_id)
        )
        if exist_ok and found is not None:
            return "exists"
        create_camera(s, restaurant_id, camera_id, name)
        return "created"

    typer.echo(f"camera {restaurant_id}/{camera_id} {_admin(config, action)}")


def _password(password_env: str | None) -> str:
    if password_env:
        value = os.environ.get(password_env)
        if not value:
            typer.echo(f"error: environment variable {password_env} is empty or unset", err=True)
            raise typer.Exit(1)
        return value
    return typer.prompt("password", hide_input=True, confirmation_prompt=True)


@app.command("add-user")
def add_user(
    config: ConfigOpt,
    username: Annotated[str, typer.Argument()],
    role: Annotated[str, typer.Option(help="admin, inspector, restaurant or ml")],
    restaurant: Annotated[str | None, typer.Option(help="restaurant users: their restaurant")] = None,
    district: Annotated[
        list[str] | None, typer.Option(help="inspectors: a district they see (repeat)")
    ] = None,
    display_name: Annotated[str, typer.Option()] = "",
    password_env: Annotated[
        str | None, typer.Option(help="read the password from this environment variable instead of a prompt")
    ] = None,
) -> None:
    """Create a login with a role."""
    from dashboard.admin import create_user

    password = _password(password_env)
    _admin(
        config, lambda s: create_user(s, username, password, role, restaurant, district or (), display_name)
    )
    typer.echo(f"user {username} ({role}) created")


@app.command("set-password")
def set_password_cmd(
    config: ConfigOpt,
    username: Annotated[str, typer.Argument()],
    password_env: Annotated[str | None, typer.Option(help="read the password from this variable")] = None,
) -> None:
    """Change a user's password."""
    from dashboard.admin import set_password

    password = _password(password_env)
    _admin(config, lambda s: set_password(s, username, password))
    typer.echo(f"password of {username} changed")


@app.command("create-token")
def create_token_cmd(
    config: ConfigOpt,
    username: Annotated[str, typer.Argument()],
    name: Annotated[str, typer.Option(help="what the token is for")] = "integration",
) -> None:
    """Create an API bearer token for a user; printed once."""
    from dashboard.admin import create_token

    typer.echo(_admin(config, lambda s: create_token(s, username, name)))


@app.command("mqtt-credentials")
def mqtt_credentials(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option(help="folder for passwd, acl, conf snippet and credentials/")],
    dashboard_user: Annotated[str, typer.Option(help="the dashboard's own broker login")] = "dashboard",
    rotate: Annotated[bool, typer.Option(help="new passwords for every login")] = False,
) -> None:
    """Write a Mosquitto password file and ACL for all registered restaurants and the dashboard."""
    from sqlalchemy import select

    from dashboard.models import Restaurant
    from dashboard.mqtt_auth import write_mosquitto_auth

    ids = _admin(config, lambda s: list(s.scalars(select(Restaurant.id))))
    files = write_mosquitto_auth(out, ids, dashboard_user, rotate)
    typer.echo(f"wrote {files.password_file}, {files.acl_file} and {files.conf_file}")
    typer.echo(f"new passwords in {files.credentials_dir}/ for: {', '.join(files.created) or 'nobody'}")


@app.command("dead-letters")
def dead_letters_cmd(
    config: ConfigOpt,
    limit: Annotated[int, typer.Option(help="how many, newest first")] = 20,
) -> None:
    """List messages the ingest refused, with their reason codes."""
    from sqlalchemy import select

    from dashboard.models import DeadLetter

    rows = _admin(
        config, lambda s: list(s.scalars(select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)))
    )
    for d in rows:
        typer.echo(f"{d.received_at:%Y-%m-%d %H:%M:%S} {d.reason:20} {d.topic}  {d.detail[:120]}")
    if not rows:
        typer.echo("no dead letters")


@app.command("export-dataset")
def export_dataset_cmd(
    config: ConfigOpt,
    out: Annotated[Path, typer.Option(help="folder to write (YOLO, COCO, Label Studio, datasheet)")],
    since: Annotated[
        str | None, typer.Option(help="alerts started on or after this date/time (display time zone)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="alerts started before this date/time; a date: to its end")
    ] = None,
    restaurant: Annotated[list[str] | None, typer.Option(help="only this restaurant (repeat)")] = None,
    val_fraction: Annotated[float, typer.Option(min=0.0, max=0.9, help="share of groups in val")] = 0.2,
    group_by: Annotated[
        str, typer.Option(help="split unit: day (restaurant+camera+day), camera or restaurant")
    ] = "day",
) -> None:
    """Export reviewed alerts as a training dataset (see README, "For ML staff")."""
    from dashboard.dataset_export import ExportOptions, export_dataset, parse_when
    from dashboard.db import open_database
    from dashboard.media import open_store

    if group_by not in ("day", "camera", "restaurant"):
        raise typer.BadParameter("expected day, camera or restaurant", param_hint="--group-by")
    cfg = load_or_exit(config)
    tz = cfg.http.display_timezone
    try:
        opts = ExportOptions(
            since=parse_when(since, tz) if since else None,
            until=parse_when(until, tz, end=True) if until else None,
            restaurants=tuple(restaurant or ()),
            val_fraction=val_fraction,
            group_by=group_by,  # type: ignore[arg-type]
            timezone=tz,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    _, sessions = open_database(cfg)
    with sessions() as session:
        sheet = export_dataset(session, open_store(cfg.media), out, opts, progress=True)
    im = sheet["images"]
    typer.echo(
        f"{out}: {im['total']} images (train {im['train']}, val {im['val']}), "
        f"{sheet['hard_negatives']} hard negatives; datasheet {out / 'DATASHEET.md'}"
    )
