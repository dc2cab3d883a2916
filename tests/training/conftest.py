"""Shared training fixtures: two tiny trained models (synthetic only, and synthetic + "real") and a benchmark.

Trained once per session (1 epoch, 160 px, a dozen images): real Ultralytics runs exported to real model
folders, small enough for the test suite. The "real" data is a synthetic set brought in through
``train import-labels``, the way an exported and corrected set of reviewed alerts arrives.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightkitchen.cli import app


def _run(*args: str) -> None:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _fit_and_export(data: list[str], run: Path, model: Path, version: str, *extra: str) -> None:
    fit = ["train", "fit", "--out", str(run), "--epochs", "1", "--imgsz", "160", "--batch", "4"]
    _run(*fit, *[a for d in data for a in ("--data", d)], "--workers", "0", *extra)
    _run(
        "train",
        "export",
        "--weights",
        str(run / "weights" / "best.pt"),
        "--out",
        str(model),
        "--version",
        version,
        "--width",
        "160",
        "--height",
        "96",
    )


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``baseline`` (synthetic seed 5151), ``candidate`` (that plus "real" data at ratio 0.5), ``benchmark``
    (seed 9191, never trained on), ``real`` (the imported set), ``synth`` (the baseline's data), and
    the run folders ``baseline_run`` and ``candidate_run``."""
    root = tmp_path_factory.mktemp("tiny-models")
    synth, raw, real, bench = root / "synth", root / "raw", root / "real", root / "bench"
    _run("train", "synth", "--out", str(synth), "--images", "12", "--seed", "5151")
    _run("train", "synth", "--out", str(raw), "--images", "6", "--seed", "5252", "--val-fraction", "0.34")
    _run("train", "import-labels", "--format", "yolo", "--src", str(raw), "--out", str(real))
    _run("train", "synth", "--out", str(bench), "--images", "6", "--seed", "9191")
    models = root / "models"
    _fit_and_export(
        [str(synth)], root / "run-base", models / "tiny-0.0.1", "0.0.1", "--set", "warmup_epochs=0"
    )
    _fit_and_export(
        [str(synth)],
        root / "run-cand",
        models / "tiny-0.0.2",
        "0.0.2",
        "--real",
        str(real),
        "--real-ratio",
        "0.5",
        "--seed",
        "1",
    )
    return {
        "baseline": models / "tiny-0.0.1",
        "candidate": models / "tiny-0.0.2",
        "benchmark": bench,
        "real": real,
        "synth": synth,
        "candidate_run": root / "run-cand",
        "baseline_run": root / "run-base",
    }
