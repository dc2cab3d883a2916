"""Command handling: a command delivered twice (QoS 1 is at least once) is carried out once; a model
download cut short says so."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from brightkitchen.contract import CommandMessage, ModelDownload, ReplyMessage, utc_now
from edge_agent.commands import CommandFailed, CommandHandler, download_model
from edge_agent.detector import Detector, DetectorSlot


def test_repeated_command_id_is_answered_again_but_not_redone(
    make_model_folder: Callable[..., Path], tmp_path: Path
) -> None:
    reloads: list[int] = []
    replies: list[ReplyMessage] = []
    handler = CommandHandler(
        "r-a",
        "box-1",
        DetectorSlot(Detector.load(make_model_folder(version="1.0.0"), threads=1)),
        1,
        tmp_path,
        reload_config=lambda: reloads.append(1) or "reloaded",
        reply=replies.append,
    )
    cmd = CommandMessage(command_id=uuid.uuid4(), issued_at=utc_now(), action="reload_config")
    handler.handle(cmd)
    handler.handle(cmd)
    handler.handle(CommandMessage(command_id=uuid.uuid4(), issued_at=utc_now(), action="reload_config"))
    assert len(reloads) == 2
    assert replies[0] == replies[1] and replies[0].ok
    assert replies[2].command_id != cmd.command_id


class _CutShort(http.server.BaseHTTPRequestHandler):
    """Declares 1000 bytes, sends 10 and hangs up: a dashboard whose store failed mid-stream."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b"0123456789")
        self.close_connection = True

    def log_message(self, *_args: object) -> None:
        pass


def test_a_download_cut_short_is_reported_as_such(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutShort)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/m.tar.gz"
    try:
        with pytest.raises(CommandFailed, match="stopped after 10 of 1000 bytes"):
            download_model(ModelDownload(name="tiny", version="2.0.0", url=url, sha256="0" * 64), tmp_path)
    finally:
        server.shutdown()
    assert not list(tmp_path.iterdir())  # nothing left behind
