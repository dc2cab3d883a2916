"""Logging, set up once per process from the CLI (``--log-level``) or ``BRIGHTKITCHEN_LOG_LEVEL``."""

from __future__ import annotations

import logging
import os

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str | None = None) -> None:
    """Configure the root logger; the CLI flag wins over the environment, which wins over INFO."""
    chosen = (level or os.environ.get("BRIGHTKITCHEN_LOG_LEVEL") or "INFO").upper()
    if chosen not in logging.getLevelNamesMapping():
        raise ValueError(f"unknown log level {chosen!r}; use DEBUG, INFO, WARNING or ERROR")
    logging.basicConfig(level=chosen, format=LOG_FORMAT, force=True)
    # Third-party chatter that hides what our own code did.
    for noisy in ("urllib3", "botocore", "PIL", "matplotlib", "multipart"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
