"""Event scoring of clips replayed through the edge pipeline (training/event_eval.py) with a given edge
config: its rules' T sets both when alarms come and when they count as late (T + 1 s)."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightkitchen.cli import app
from brightkitchen.logs import LOG_FORMAT
from edge_agent.config import load_edge_config
from training.event_eval import evaluate_clips

CONFIG = """
agent: {{id: eval, restaurant: r-eval}}
model: {{path: models/unused}}
cameras:
  - id: bench
    source: unused.mp4
    fps: 5
    rules:
      - {{type: board_misuse, min_duration_s: {t}}}
      - {{type: stacked_containers, min_duration_s: {t}}}
"""


def test_late_is_judged_against_the_configs_own_T(model_dir: Path, synth_clip: Path, tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(CONFIG.format(t=1))
    default = evaluate_clips(model_dir, synth_clip.parent)
    quick = evaluate_clips(model_dir, synth_clip.parent, load_edge_config(path))
    assert default["on_time_limits_s"] == {"board_misuse": 4.0, "stacked_containers": 4.0}
    assert quick["on_time_limits_s"] == {"board_misuse": 2.0, "stacked_containers": 2.0}
    assert default["gt_events"] == quick["gt_events"] > 0 and quick["matched"] > 0
    for summary, limit in ((default, 4.0), (quick, 2.0)):
        (clip,) = summary["per_clip"]
        assert clip["late_s"] == [x for x in clip["latencies_s"] if x > limit]
        assert summary["on_time_recall"] == (summary["matched"] - summary["late"]) / summary["gt_events"]
    assert quick["median_onset_latency_s"] < default["median_onset_latency_s"]  # T = 1 s alarms sooner


def test_a_bad_edge_config_is_refused_before_any_work(model_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(CONFIG.format(t=-2))
    args = ["train", "eval", "--model", str(model_dir), "--data", str(tmp_path / "none"), "--edge-config"]
    result = CliRunner().invoke(app, [*args, str(path)], env={"COLUMNS": "400"})
    message = " ".join(result.output.replace("│", " ").split())  # unwrapped from typer's error box
    assert result.exit_code == 2
    assert f"{path}: cameras[0].rules[0].min_duration_s: Input should be greater than 0" in message


def test_clips_alone_give_the_event_metrics(model_dir: Path, synth_clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "events.json"
    args = ["train", "eval", "--model", str(model_dir), "--clips", str(synth_clip.parent), "--json", str(out)]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "mAP" not in result.output and "events: 1 clips" in result.output
    saved = json.loads(out.read_text())
    assert set(saved) == {"model", "events"}
    assert saved["events"] == evaluate_clips(model_dir, synth_clip.parent)


def test_eval_needs_data_or_clips_and_the_card_needs_data(model_dir: Path, synth_clip: Path) -> None:
    base = ["train", "eval", "--model", str(model_dir)]
    for extra, wanted in (
        ([], "give --data (detection metrics), --clips (event metrics) or both"),
        (["--clips", str(synth_clip.parent), "--update-card"], "the card stores the held-out mAP"),
    ):
        result = CliRunner().invoke(app, [*base, *extra], env={"COLUMNS": "400"})
        assert result.exit_code == 2 and wanted in " ".join(result.output.replace("│", " ").split())


def test_the_pipelines_log_lines_stay_off_the_progress_bar(
    model_dir: Path, synth_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)  # as basicConfig sets it up, on the captured stderr
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    saved = root.handlers, root.level
    root.handlers, root.level = [handler], logging.INFO
    try:
        evaluate_clips(model_dir, synth_clip.parent)
    finally:
        root.handlers, root.level = saved
    pieces = re.split(r"[\r\n]", capsys.readouterr().err)
    logged = [p for p in pieces if " INFO " in p]
    assert any("alert" in p for p in logged)
    assert all(re.match(r"\d{4}-\d\d-\d\d ", p) for p in logged), [p for p in logged if "replay" in p]
