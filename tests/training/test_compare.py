"""``train compare``: the verdict on hand-made metrics, the report files, a run on two tiny real models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightkitchen.cli import app
from training.compare import judge, write_report

runner = CliRunner()


def _result(version: str, per_class: dict[str, tuple[int, float, float]], events: dict | None = None) -> dict:
    rows = [
        {"name": n, "instances": i, "precision": 0.5, "recall": 0.5, "map50": m50, "map50_95": m95}
        for n, (i, m50, m95) in per_class.items()
    ]
    result = {
        "model": f"models/bk-{version}",
        "card": {"name": "bk", "version": version, "sha256": "ab" * 32},
        "images": 50,
        "per_class": rows,
    }
    if events is not None:
        result["events"] = {**events, "median_onset_latency_s": 3.1}
    return result


BASE = {"board_red": (20, 0.80, 0.50), "raw_meat": (15, 0.60, 0.40), "container": (0, 0.0, 0.0)}


def test_equal_or_within_tolerance_promotes() -> None:
    assert judge(_result("2", BASE), _result("1", BASE), 0.02).promote
    slightly = {**BASE, "raw_meat": (15, 0.585, 0.381)}  # -0.015 and -0.019
    verdict = judge(_result("2", slightly), _result("1", BASE), 0.02)
    assert verdict.promote and verdict.reasons == []
    assert [(c.scope, c.metric) for c in verdict.checks] == [
        ("board_red", "map50"),
        ("board_red", "map50_95"),
        ("raw_meat", "map50"),
        ("raw_meat", "map50_95"),
    ]  # container has no instances in the benchmark: not judged


def test_one_class_worse_on_one_metric_rejects_even_if_the_mean_improves() -> None:
    cand = {"board_red": (20, 0.95, 0.70), "raw_meat": (15, 0.62, 0.37), "container": (0, 0.0, 0.0)}
    verdict = judge(_result("2", cand), _result("1", BASE), 0.02)
    assert not verdict.promote
    assert verdict.reasons == ["raw_meat map50_95: 0.370 vs 0.400 (-0.030, tolerance 0.02)"]


def test_event_metrics_count_when_both_have_them() -> None:
    good = {"precision": 0.9, "recall": 0.8}
    worse_recall = {"precision": 0.95, "recall": 0.7}
    verdict = judge(_result("2", BASE, worse_recall), _result("1", BASE, good), 0.05)
    assert not verdict.promote and verdict.reasons[0].startswith("events recall: 0.700 vs 0.800")
    assert judge(
        _result("2", BASE, {"precision": 0.86, "recall": 0.8}), _result("1", BASE, good), 0.05
    ).promote
    assert judge(_result("2", BASE), _result("1", BASE, good), 0.05).promote  # no clips for one: not compared


def test_alerts_later_than_the_target_count_against_the_candidate() -> None:
    """Same events found, but fewer within T + 1 s: rejected on on-time recall (the edge target)."""
    base = {"precision": 1.0, "recall": 0.9, "on_time_recall": 0.8}
    slower = {"precision": 1.0, "recall": 0.9, "on_time_recall": 0.7}
    verdict = judge(_result("2", BASE, slower), _result("1", BASE, base), 0.05)
    assert verdict.reasons == ["events on_time_recall: 0.700 vs 0.800 (-0.100, tolerance 0.05)"]
    older = {"precision": 1.0, "recall": 0.9}  # a result from before on-time recall: compared on the rest
    assert judge(_result("2", BASE, slower), _result("1", BASE, older), 0.05).promote


def test_missing_class_or_empty_benchmark_rejects() -> None:
    partial = {k: v for k, v in BASE.items() if k != "raw_meat"}
    assert judge(_result("2", partial), _result("1", BASE), 0.02).reasons == [
        "class raw_meat is missing from the candidate"
    ]
    empty = {"board_red": (0, 0.0, 0.0)}
    assert not judge(_result("2", empty), _result("1", empty), 0.02).promote


def test_report_files(tmp_path: Path) -> None:
    cand = {**BASE, "raw_meat": (15, 0.70, 0.30)}
    events = {"precision": 0.9, "recall": 0.8, "on_time_recall": 0.7, "false_alerts": 1, "late": 3}
    verdict = judge(_result("2", cand, events), _result("1", BASE, {**events, "late": 5}), 0.02)
    write_report(
        tmp_path,
        _result("2", cand, events),
        _result("1", BASE, {**events, "late": 5}),
        verdict,
        0.02,
        Path("data/bench"),
        Path("data/clips"),
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["verdict"] == "reject" and report["tolerance"] == 0.02
    assert report["reasons"] == ["raw_meat map50_95: 0.300 vs 0.400 (-0.100, tolerance 0.02)"]
    md = (tmp_path / "report.md").read_text()
    assert "**Verdict: REJECT**" in md and "![per-class metrics](chart.png)" in md
    assert "| raw_meat | 15 | 0.600 | 0.700 | +0.100 | 0.400 | 0.300 | -0.100 | **no** |" in md
    assert "| container | 0 | – | – | – | – | – | – | not judged |" in md
    assert "| recall | 0.800 | 0.800 | +0.000 |" in md
    assert "| on_time_recall | 0.700 | 0.700 | +0.000 |" in md and "| late | 5 | 3 | -2 |" in md
    png = (tmp_path / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.slow
def test_compare_two_tiny_trained_models(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    base, cand, bench = tiny_models["baseline"], tiny_models["candidate"], tiny_models["benchmark"]
    args = ["train", "compare", "--candidate", str(cand), "--baseline", str(base), "--data", str(bench)]
    strict = runner.invoke(app, [*args, "--tolerance", "0", "--out", str(tmp_path / "strict")])
    report = json.loads((tmp_path / "strict" / "report.json").read_text())
    assert strict.exit_code == (0 if report["verdict"] == "promote" else 1), strict.output
    assert report["verdict"] == (
        "promote" if judge(report["candidate"], report["baseline"], 0).promote else "reject"
    )
    assert report["candidate"]["card"]["version"] == "0.0.2" and report["baseline"]["images"] == 6
    assert {r["name"] for r in report["candidate"]["per_class"]} >= {"board_red", "container"}
    lenient = runner.invoke(app, [*args, "--tolerance", "1", "--out", str(tmp_path / "lenient")])
    assert lenient.exit_code == 0 and "PROMOTE: report" in lenient.output
    assert (tmp_path / "lenient" / "chart.png").stat().st_size > 10_000
    leaked = runner.invoke(app, [*args[:-1], str(tiny_models["synth"]), "--out", str(tmp_path / "x")])
    assert leaked.exit_code == 2 and "seed 5151" in leaked.output


@pytest.mark.slow
def test_candidate_was_trained_on_the_mix(tiny_models: dict[str, Path]) -> None:
    """11 synthetic training images and 4 real ones at ratio 0.5: each real one twice, 3 of them 3 times."""
    run = tiny_models["candidate_run"]
    train = (run / "mix" / "train.txt").read_text().splitlines()
    real = [p for p in train if p.startswith(str(tiny_models["real"]))]
    assert (len(train), len(real), len(set(real))) == (22, 11, 4)
    fit = json.loads((run / "fit.json").read_text())
    assert fit["dataset"]["real"]["used"] == 11 and fit["dataset"]["seeds"] == [5151]
    assert fit["options"]["real"] == [str(tiny_models["real"])]
    card = json.loads((tiny_models["candidate"] / "card.json").read_text())
    assert card["training"]["dataset"]["real"]["ratio"] == 0.5
    assert (
        "real data: 11 of the training images (4 distinct"
        in (tiny_models["candidate"] / "README.md").read_text()
    )
