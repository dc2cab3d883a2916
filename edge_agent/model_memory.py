"""Which model the agent runs, remembered across restarts: a switch or rollback from the dashboard must not
be undone by a reboot.

``<model.download_dir>/current.json`` holds the folder in use and the ``model.path`` of the config at that
time. At start the agent loads the remembered folder, unless the config's ``model.path`` has changed since
(an operator's edit wins) or the folder no longer loads (then the configured model, with a warning).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from edge_agent.detector import Detector, ModelLoadError

log = logging.getLogger(__name__)
CURRENT_FILE = "current.json"


def remember(download_dir: Path, folder: Path, configured: Path) -> None:
    """Record ``folder`` as the model in use (atomically)."""
    download_dir.mkdir(parents=True, exist_ok=True)
    tmp = download_dir / f".{CURRENT_FILE}.tmp"
    tmp.write_text(json.dumps({"path": str(Path(folder).resolve()), "configured": str(configured)}))
    os.replace(tmp, download_dir / CURRENT_FILE)


def load_start_model(download_dir: Path, configured: Path, threads: int) -> Detector:
    """The remembered model if it still applies and loads, else the configured one."""
    try:
        memory = json.loads((download_dir / CURRENT_FILE).read_text())
    except FileNotFoundError:
        memory = None
    except (OSError, ValueError) as exc:
        log.warning("ignoring %s: %s", download_dir / CURRENT_FILE, exc)
        memory = None
    if memory and memory.get("configured") == str(configured):
        try:
            return Detector.load(Path(memory["path"]), threads=threads)
        except (ModelLoadError, KeyError, TypeError) as exc:
            log.warning("remembered model cannot be used (%s); starting on %s", exc, configured)
    return Detector.load(configured, threads=threads)
