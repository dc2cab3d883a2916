"""The dashboard as an operator runs it: admin commands, then ``serve --with-ingest`` as a real process
against a real Mosquitto; an alert published over MQTT shows up in the API and on the live stream. And as
ML staff run it: ``dashboard models`` uploads, lists, rolls out, promotes and aborts."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from brightkitchen.cli import app
from brightkitchen.contract import AvailabilityMessage, encode, topic_for, utc_now
from dashboard.models import Rollout


def _cli(cfg, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "brightkitchen", "dashboard", *args, "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_admin_commands_then_serve_with_ingest(
    tmp_path, broker, publisher, make_event, make_media, wait_until
) -> None:
    port = _free_port()
    cfg = tmp_path / "dashboard.yaml"
    cfg.write_text(
        f"database_url: sqlite:///{tmp_path}/d.db\nsecret_key_file: {tmp_path}/key\n"
        f"media: {{path: {tmp_path}/media}}\nmqtt: {{port: {broker.port}, client_id: cli-test}}\n"
        f"http: {{port: {port}, secure_cookies: false}}\n"
    )
    assert _cli(cfg, "migrate").stdout.strip().startswith("database at revision 000")
    assert _cli(cfg, "add-restaurant", "r-a", "--name", "Noodle House", "--district", "North").returncode == 0
    assert _cli(cfg, "add-camera", "r-a", "cam-1").returncode == 0
    dup = _cli(cfg, "add-camera", "r-a", "cam-1")
    assert dup.returncode == 1 and "already exists" in dup.stderr
    again = _cli(cfg, "add-camera", "r-a", "cam-1", "--exist-ok")  # for idempotent demo scripts
    assert again.returncode == 0 and again.stdout.strip() == "camera r-a/cam-1 exists"
    assert (
        _cli(
            cfg,
            "add-user",
            "insp",
            "--role",
            "inspector",
            "--district",
            "North",
            "--password-env",
            "PW",
            env={"PW": "long-enough"},
        ).returncode
        == 0
    )
    token = _cli(cfg, "create-token", "insp").stdout.strip()
    assert token.startswith("bkt_")
    bad = _cli(cfg, "add-user", "x", "--role", "inspector", "--password-env", "PW", env={"PW": "long-enough"})
    assert "needs at least one district" in bad.stderr

    proc = subprocess.Popen(
        [sys.executable, "-m", "brightkitchen", "dashboard", "serve", "--config", str(cfg), "--with-ingest"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"})
        wait_until(lambda: _up(api), timeout_s=30)
        lines: list[str] = []

        def listen() -> None:
            with api.stream("GET", "/api/v1/live", timeout=30) as r:
                for line in r.iter_lines():
                    lines.append(line)
                    if line.startswith("data:"):
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(1.0)  # let the stream start before the alert arrives
        ev = make_event()
        publisher.publish(topic_for(ev), encode(ev))
        publisher.publish(topic_for(make_media(ev)), encode(make_media(ev)))
        items = wait_until(lambda: api.get("/api/v1/alerts").json()["items"], timeout_s=20)
        assert items[0]["id"] == str(ev.event_id)
        listener.join(timeout=15)
        assert "event: alert" in lines and str(ev.event_id) in lines[-1]
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    letters = _cli(cfg, "dead-letters").stdout
    assert "no dead letters" in letters
    # uvicorn shuts down gracefully, then re-raises SIGTERM so the exit status tells how it ended.
    assert proc.returncode in (0, -15) and "Application shutdown complete" in out, out


def _up(api: httpx.Client) -> bool:
    try:
        return api.get("/api/v1/me").status_code == 200
    except httpx.TransportError:
        return False


def _models(cfg: Path, *args: str) -> Any:
    """``brightkitchen dashboard models ARGS --config CFG`` in-process; ``.stdout``, ``.stderr``."""
    argv = ["dashboard", "models", *args, "--config", str(cfg)]
    return CliRunner().invoke(app, argv, prog_name="brightkitchen", env={"COLUMNS": "200"})


def _write_config(
    path: Path, db_config: Any, mqtt_port: int, public_url: str | None = "https://dash.example.com"
) -> Path:
    """A YAML config on the test database and media folder."""
    path.write_text(
        f"database_url: {db_config.database_url}\nsecret_key_file: {db_config.secret_key_file}\n"
        f"media: {{path: {db_config.media.path}}}\nmqtt: {{port: {mqtt_port}}}\n"
        + (f"http: {{public_url: '{public_url}'}}\n" if public_url else "")
    )
    return path


@pytest.fixture
def models_config(db_config, tenants, persister, broker, tmp_path: Path) -> Path:
    """A config on the test database, media folder and broker; agents r-a/box-1 and r-a/box-2 online."""
    for agent in ("box-1", "box-2"):
        msg = AvailabilityMessage(
            restaurant="r-a",
            agent=agent,
            status="online",
            at=utc_now(),
            model={"name": "tiny", "version": "0.9"},
        )
        assert persister.handle(topic_for(msg), encode(msg)).outcome == "stored"
    return _write_config(tmp_path / "dashboard.yaml", db_config, broker.port)


@pytest.mark.parametrize("db_config", ["sqlite"], indirect=True)
def test_models_upload_and_list(models_config: Path, make_model_folder, tmp_path: Path) -> None:
    folder = make_model_folder(version="1.0.0")
    (tmp_path / "report.md").write_text("# Candidate vs baseline\n")
    (tmp_path / "report.json").write_text(json.dumps({"verdict": "promote"}))
    r = _models(
        models_config,
        "upload",
        str(folder),
        "--report-md",
        str(tmp_path / "report.md"),
        "--report-json",
        str(tmp_path / "report.json"),
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "model tiny:1.0.0 added to the registry (id 1)"
    again = _models(models_config, "upload", str(folder))
    assert again.exit_code == 1 and "already in the registry (id 1)" in again.stderr

    (folder / "model.onnx").write_bytes((folder / "model.onnx").read_bytes() + b"\0")
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(tampered, "w:gz") as tf:
        tf.add(folder, arcname="tiny-1.0.0")
    bad = _models(models_config, "upload", str(tampered))
    assert bad.exit_code == 1 and bad.stderr.startswith(f"error: {tampered}: model.onnx has sha256")
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not an archive")
    assert "not a .tar.gz, .tar or .zip archive" in _models(models_config, "upload", str(junk)).stderr
    assert _models(models_config, "upload", str(tmp_path / "missing")).exit_code == 2

    listed = _models(models_config, "list")
    assert listed.exit_code == 0, listed.output
    header, row = listed.stdout.splitlines()
    assert (
        header.split()[:2] == ["ID", "MODEL"]
        and row.split()[:2] == ["1", "tiny:1.0.0"]
        and "0.450  promote" in row
    )
    (entry,) = json.loads(_models(models_config, "list", "--json").stdout)
    assert (entry["name"], entry["version"], entry["report"]) == ("tiny", "1.0.0", {"verdict": "promote"})


@pytest.mark.parametrize("db_config", ["sqlite"], indirect=True)
def test_models_rollout_and_promote(
    models_config: Path, make_model_folder, sessions, command_listener
) -> None:
    assert _models(models_config, "upload", str(make_model_folder(version="1.0.0"))).exit_code == 0
    no_model = _models(models_config, "rollout", "--model", "tiny:9.9", "--canary", "r-a/box-1")
    assert no_model.exit_code == 1 and "no model tiny:9.9 in the registry" in no_model.stderr
    assert _models(models_config, "rollout", "--model", "tiny", "--canary", "r-a/box-1").exit_code == 2
    stranger = _models(models_config, "rollout", "--model", "tiny:1.0.0", "--canary", "r-z/box-9")
    assert stranger.exit_code == 1 and "unknown agent 'r-z/box-9'" in stranger.stderr

    r = _models(
        models_config, "rollout", "--model", "tiny:1.0.0", "--canary", "r-a/box-1", "--agent", "r-a/box-2"
    )
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("rollout 1: tiny:1.0.0 sent to the canary r-a/box-1; 1 more agent(s)")
    (canary,) = command_listener.wait_for(1)
    assert canary.action == "switch_model"
    assert canary.model.url == "https://dash.example.com/api/v1/models/1/download"
    early = _models(models_config, "promote", "1")
    assert early.exit_code == 1 and "only a canary_ok rollout can be promoted" in early.stderr
    with sessions.begin() as s:
        s.get(Rollout, 1).state = "canary_ok"  # the state machine itself is tested in test_rollout.py
    promoted = _models(models_config, "promote", "1")
    assert promoted.exit_code == 0, promoted.output
    assert promoted.stdout.strip() == "rollout 1 promoted: sent to 1 more agent(s), state rolling"
    assert command_listener.wait_for(2)[1].model.token != canary.model.token
    assert _models(models_config, "promote", "99").stderr.strip() == "error: no rollout 99"


@pytest.mark.parametrize("db_config", ["sqlite"], indirect=True)
def test_models_rollout_needs_the_public_url_and_a_broker(
    models_config: Path, db_config, broker, make_model_folder, sessions
) -> None:
    assert _models(models_config, "upload", str(make_model_folder(version="1.0.0"))).exit_code == 0
    args = ("rollout", "--model", "tiny:1.0.0", "--canary", "r-a/box-1")
    _write_config(models_config, db_config, broker.port, public_url=None)
    r = _models(models_config, *args)
    assert r.exit_code == 2 and "http.public_url is not set" in r.stderr
    _write_config(models_config, db_config, mqtt_port=1)  # nothing listens there
    r = _models(models_config, *args)
    assert r.exit_code == 1 and "rollout 1 failed: cannot reach" in r.stderr, r.output
    with sessions() as s:
        assert s.get(Rollout, 1).state == "failed"


@pytest.mark.parametrize("db_config", ["sqlite"], indirect=True)
def test_models_abort_sends_the_switched_agents_back(
    models_config: Path, make_model_folder, sessions, command_listener
) -> None:
    for version in ("1.0.0", "0.9"):  # the agents run 0.9: the model they go back to
        assert _models(models_config, "upload", str(make_model_folder(version=version))).exit_code == 0
    args = ("rollout", "--model", "tiny:1.0.0", "--canary", "r-a/box-1", "--agent", "r-a/box-2")
    assert _models(models_config, *args).exit_code == 0
    command_listener.wait_for(1)
    with sessions.begin() as s:  # the state machine itself is tested in test_rollout.py
        s.get(Rollout, 1).targets[0].state = "switched"

    r = _models(models_config, "abort", "1")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == "rollout 1 aborted: 1 agent(s) sent back to their previous model"
    back = command_listener.wait_for(2)[1]
    assert command_listener.topics[1] == "bk/v1/r-a/agent/box-1/command"
    assert (back.action, back.model.version) == ("switch_model", "0.9")
    assert back.model.url == "https://dash.example.com/api/v1/models/2/download"
    with sessions() as s:
        assert [t.state for t in s.get(Rollout, 1).targets] == ["reverting", "skipped"]
    again = _models(models_config, "abort", "1")
    assert again.exit_code == 1 and "rollout 1 is aborted; only an unfinished rollout" in again.stderr
    unknown = _models(models_config, "abort", "99")
    assert unknown.exit_code == 1 and unknown.stderr.strip() == "error: no rollout 99"
