"""Command handling: a command delivered twice (QoS 1 is at least once) is carried out once."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from brightkitchen.contract import CommandMessage, ReplyMessage, utc_now
from edge_agent.commands import CommandHandler
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
