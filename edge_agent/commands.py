"""Commands from the dashboard: ping, reload_config, switch_model (download, sha256 check, unpack, load;
the old model stays on any failure) and rollback_model. Each is answered by a ``ReplyMessage``; after a
model change ``on_model_change`` lets the agent announce it and arm the rollback watchdog.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from brightkitchen.contract import CommandMessage, ModelDownload, ModelRef, ReplyMessage, utc_now
from brightkitchen.model_card import MODEL_FILE
from edge_agent.detector import DetectorSlot, ModelLoadError

log = logging.getLogger(__name__)
DOWNLOAD_TIMEOUT_S = 60
ANSWERS_KEPT = 256  # command ids remembered for duplicate deliveries


class CommandFailed(RuntimeError):
    """A command that could not be carried out; the message goes into the reply."""


def download_model(spec: ModelDownload, download_dir: Path) -> Path:
    """Fetch a model archive (.tar.gz, .tar or .zip) to disk in pieces, check its length and sha256, unpack;
    returns the model folder."""
    download_dir.mkdir(parents=True, exist_ok=True)
    target = download_dir / f"{spec.name}-{spec.version}"
    with tempfile.TemporaryDirectory(dir=download_dir, prefix=".download-") as tmp:
        archive = Path(tmp) / "archive"
        request = urllib.request.Request(spec.url)
        if spec.token:
            request.add_header("Authorization", f"Bearer {spec.token}")
        digest, size = hashlib.sha256(), 0
        try:
            with (
                urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as resp,
                archive.open("wb") as out,
            ):
                declared = resp.headers.get("Content-Length")
                while chunk := resp.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise CommandFailed(f"cannot download {spec.url}: {exc}") from exc
        if declared is not None and declared.isdigit() and int(declared) != size:
            raise CommandFailed(f"the download of {spec.url} stopped after {size} of {declared} bytes")
        if digest.hexdigest() != spec.sha256:
            raise CommandFailed(f"sha256 of the download is {digest.hexdigest()}, expected {spec.sha256}")
        unpacked = Path(tmp) / "unpacked"
        try:
            if zipfile.is_zipfile(archive):
                with zipfile.ZipFile(archive) as zf:
                    zf.extractall(unpacked)
            else:
                with tarfile.open(archive) as tf:
                    tf.extractall(unpacked, filter="data")
        except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
            raise CommandFailed(f"cannot unpack the model archive: {exc}") from exc
        found = [p.parent for p in unpacked.rglob(MODEL_FILE)]
        if len(found) != 1:
            raise CommandFailed(f"the archive holds {len(found)} {MODEL_FILE} files, expected one")
        if target.exists():
            shutil.rmtree(target)
        shutil.move(str(found[0]), target)
    return target


class CommandHandler:
    """Carries out commands against the agent's detector slot and config reload hook."""

    def __init__(
        self,
        restaurant: str,
        agent: str,
        detectors: DetectorSlot,
        threads: int,
        download_dir: Path,
        reload_config: Callable[[], str],
        reply: Callable[[ReplyMessage], None],
        on_model_change: Callable[[UUID | None], None] = lambda _switch_id: None,
    ) -> None:
        self.restaurant, self.agent = restaurant, agent
        self.detectors = detectors
        self.threads = threads
        self.download_dir = download_dir
        self.reload_config = reload_config
        self.reply = reply
        self.on_model_change = on_model_change  # the switch command's id, or None after a rollback
        self._answered: OrderedDict[UUID, ReplyMessage] = OrderedDict()  # QoS 1 may deliver twice

    def model_ref(self) -> ModelRef:
        card = self.detectors.current.card
        return ModelRef(name=card.name[:64], version=card.version[:32], sha256=card.sha256)

    def handle(self, cmd: CommandMessage) -> None:
        """Carry out a command and reply; a repeated ``command_id`` only gets its first answer again."""
        if cmd.command_id in self._answered:
            log.info("command %s (%s) already handled; answering again", cmd.command_id, cmd.action)
            self.reply(self._answered[cmd.command_id])
            return
        try:
            message = self._do(cmd)
            ok = True
        except (CommandFailed, ModelLoadError, ValueError) as exc:
            message, ok = str(exc), False
            log.error("command %s (%s) failed: %s", cmd.command_id, cmd.action, exc)
        answer = ReplyMessage(
            command_id=cmd.command_id,
            restaurant=self.restaurant,
            agent=self.agent,
            at=utc_now(),
            ok=ok,
            message=message[:2000],
            model=self.model_ref(),
        )
        self._answered[cmd.command_id] = answer
        while len(self._answered) > ANSWERS_KEPT:
            self._answered.popitem(last=False)
        self.reply(answer)

    def _do(self, cmd: CommandMessage) -> str:
        if cmd.action == "ping":
            return "pong"
        if cmd.action == "reload_config":
            return self.reload_config()
        if cmd.action == "rollback_model":
            ref = self.detectors.rollback().card.ref
            self.on_model_change(None)
            return f"rolled back to {ref}"
        assert cmd.model is not None  # the contract requires it for switch_model
        folder = download_model(cmd.model, self.download_dir)
        new = self.detectors.switch(folder, self.threads)
        self.on_model_change(cmd.command_id)
        return f"switched to {new.card.ref}"
