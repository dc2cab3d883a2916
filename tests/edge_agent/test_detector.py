"""Detector session settings that matter on a small multi-camera box."""

from __future__ import annotations

from pathlib import Path

from edge_agent.detector import Detector


def test_idle_pool_threads_do_not_spin(model_dir: Path) -> None:
    # Spinning pool threads burned ~3x the inference's own CPU between 5-fps frames
    # (bench/edge_throughput.py): half a 2-core box's capacity for cameras.
    options = Detector.load(model_dir, threads=2).session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
