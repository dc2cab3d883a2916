"""The dashboard as an operator runs it: admin commands, then ``serve --with-ingest`` as a real process
against a real Mosquitto; an alert published over MQTT shows up in the API and on the live stream."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time

import httpx

from brightkitchen.contract import encode, topic_for


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
