"""``brightkitchen demo run``: broker + dashboard + edge agent on the bundled sample clip, in one command.

Everything is real: a Mosquitto with per-restaurant logins and ACLs written by the dashboard's own admin
code, the dashboard (SQLite, filesystem media) with its ingest worker, and an edge agent that plays the
bundled synthetic clip in a loop through the shipped model. Alerts appear once the agent has seen a
violation for its rule's duration; nothing is pre-seeded. State lives in ``--workdir`` (default
``demo-data/``); each run starts it afresh unless ``--keep``.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
import yaml

from brightkitchen.model_card import newest_model

log = logging.getLogger(__name__)
app = typer.Typer(help="One-command demo on embedded defaults.", no_args_is_help=True)
SAMPLE_CLIP = Path(__file__).resolve().parent / "samples" / "demo-kitchen.mp4"
RESTAURANT, CAMERA, DISTRICT = "demo-r1", "demo-cam1", "Demo district"
LOGINS = {"inspector": "inspector", "restaurant": "restaurant", "admin": "admin"}


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    log_path: Path


def find_mosquitto() -> str | None:
    """The Mosquitto broker binary: on PATH, or where Debian puts it."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there, else any free port on 127.0.0.1."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait_for_port(port: int, timeout_s: float, proc: subprocess.Popen, name: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}; see {log_path}:\n{_tail(log_path)}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout_s:.0f} s; see {log_path}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "brightkitchen", *args]


def _start(name: str, cmd: list[str], workdir: Path) -> Service:
    log_path = workdir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fh = log_path.open("ab")
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=workdir, start_new_session=True)
    log.info("started %s (pid %d), log %s", name, proc.pid, log_path)
    return Service(name, proc, log_path)


def prepare(workdir: Path, broker_port: int, http_port: int, model: Path) -> dict[str, str]:
    """Write configs, create the database with the demo restaurant, camera and logins; returns passwords."""
    from dashboard.mqtt_auth import write_mosquitto_auth

    workdir.mkdir(parents=True, exist_ok=True)
    auth = write_mosquitto_auth(workdir / "mqtt", [RESTAURANT])
    (workdir / "mosquitto.conf").write_text(
        "\n".join(
            [
                *(["user root"] if os.geteuid() == 0 else []),
                f"listener {broker_port} 127.0.0.1",
                "persistence false",
                "max_queued_messages 100000",
                "message_size_limit 20000000",
                auth.conf_file.read_text().strip(),
                "",
            ]
        )
    )
    dash_cfg = {
        "database_url": f"sqlite:///{(workdir / 'dashboard.db').resolve()}",
        "secret_key_file": str((workdir / "secret_key").resolve()),
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "username": "dashboard",
            "password_file": str((auth.credentials_dir / "dashboard.txt").resolve()),
            "client_id": "bk-demo-ingest",
        },
        "media": {"backend": "filesystem", "path": str((workdir / "media").resolve())},
        "http": {"host": "127.0.0.1", "port": http_port, "display_timezone": "Asia/Shanghai"},
    }
    (workdir / "dashboard.yaml").write_text(yaml.safe_dump(dash_cfg, sort_keys=False))
    edge_cfg = {
        "agent": {"id": "demo-box", "restaurant": RESTAURANT},
        "mqtt": {
            "host": "127.0.0.1",
            "port": broker_port,
            "username": RESTAURANT,
            "password_file": str((auth.credentials_dir / f"{RESTAURANT}.txt").resolve()),
            "stats_interval_s": 5,
        },
        "model": {"path": str(model.resolve()), "threads": 1},
        "outbox": {"path": str((workdir / "outbox.sqlite").resolve())},
        "cameras": [
            {
                "id": CAMERA,
                "source": str(SAMPLE_CLIP),
                "fps": 5,
                "loop": True,
                "realtime": True,
                "rules": [
                    {"type": "board_misuse", "min_duration_s": 2, "realarm_s": 120, "severity": "high"},
                    {
                        "type": "stacked_containers",
                        "min_duration_s": 2,
                        "realarm_s": 120,
                        "severity": "medium",
                    },
                ],
            }
        ],
    }
    (workdir / "edge.yaml").write_text(yaml.safe_dump(edge_cfg, sort_keys=False))

    cfg = ["--config", str(workdir / "dashboard.yaml")]
    admin = [
        ["dashboard", "migrate", *cfg],
        [
            "dashboard",
            "add-restaurant",
            *cfg,
            RESTAURANT,
            "--name",
            "Demo Restaurant",
            "--district",
            DISTRICT,
        ],
        ["dashboard", "add-camera", *cfg, RESTAURANT, CAMERA, "--name", "Prep counter"],
    ]
    passwords = {user: secrets.token_urlsafe(9) for user in LOGINS}
    roles = {
        "inspector": ["--role", "inspector", "--district", DISTRICT],
        "restaurant": ["--role", "restaurant", "--restaurant", RESTAURANT],
        "admin": ["--role", "admin"],
    }
    for user, role_args in roles.items():
        admin.append(
            ["dashboard", "add-user", *cfg, user, *role_args, "--password-env", f"BK_DEMO_PW_{user}"]
        )
    env = {**os.environ, **{f"BK_DEMO_PW_{u}": p for u, p in passwords.items()}}
    for args in admin:
        subprocess.run(_cli(*args), check=True, cwd=workdir, env=env, stdout=subprocess.DEVNULL)
    return passwords


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> None:
    """Ctrl-C and SIGTERM stop the demo and its services, even when started with SIGINT ignored (a shell
    ignores it for background jobs, and Python then never turns it into KeyboardInterrupt)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)


@app.command("run")
def run(
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its database, media, logs.")] = Path(
        "demo-data"
    ),
    http_port: Annotated[int, typer.Option(help="Dashboard port (another is chosen if taken).")] = 8080,
    broker_port: Annotated[int, typer.Option(help="Broker port (another is chosen if taken).")] = 1884,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    model: Annotated[Path | None, typer.Option(help="Model folder (default: the newest in models/).")] = None,
) -> None:
    """Start Mosquitto, the dashboard (with ingest) and an edge agent on the bundled sample clip."""
    mosquitto = find_mosquitto()
    if mosquitto is None:
        typer.echo("error: the demo needs Mosquitto: sudo apt-get install -y mosquitto", err=True)
        raise typer.Exit(2)
    if not SAMPLE_CLIP.exists():
        typer.echo(f"error: the bundled sample clip {SAMPLE_CLIP} is missing", err=True)
        raise typer.Exit(2)
    workdir = workdir.resolve()
    shutil.rmtree(workdir, ignore_errors=True)
    broker_port, http_port = free_port(broker_port), free_port(http_port)
    typer.echo("preparing: configs, database, demo restaurant and logins …")
    passwords = prepare(workdir, broker_port, http_port, model or newest_model())

    services: list[Service] = []
    _stop_on_signals()
    try:
        services.append(_start("mosquitto", [mosquitto, "-c", str(workdir / "mosquitto.conf")], workdir))
        wait_for_port(broker_port, 10, services[-1].proc, "mosquitto", services[-1].log_path)
        services.append(
            _start(
                "dashboard",
                _cli("dashboard", "serve", "--config", "dashboard.yaml", "--with-ingest"),
                workdir,
            )
        )
        wait_for_port(http_port, 60, services[-1].proc, "dashboard", services[-1].log_path)
        services.append(_start("edge", _cli("edge", "run", "--config", "edge.yaml"), workdir))
        url = f"http://127.0.0.1:{http_port}/"
        typer.echo(
            f"\nBright Kitchen demo is running: {url}\n"
            f"  inspector login:  inspector / {passwords['inspector']}   (review queue)\n"
            f"  restaurant login: restaurant / {passwords['restaurant']}   (restaurant portal)\n"
            f"  admin login:      admin / {passwords['admin']}\n"
            f"The edge agent plays {SAMPLE_CLIP.name} in a loop; first alerts within about a minute.\n"
            f"Logs: {workdir / 'logs'}/. Stop with Ctrl-C.\n"
        )
        deadline = time.monotonic() + duration if duration else None
        while deadline is None or time.monotonic() < deadline:
            for svc in services:
                if svc.proc.poll() is not None:
                    raise RuntimeError(
                        f"{svc.name} stopped ({svc.proc.returncode}); log:\n{_tail(svc.log_path)}"
                    )
            time.sleep(0.5)
    except KeyboardInterrupt:
        typer.echo("stopping …")
    except RuntimeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        for svc in reversed(services):
            if svc.proc.poll() is None:
                svc.proc.terminate()
        for svc in reversed(services):
            try:
                svc.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                svc.proc.kill()
