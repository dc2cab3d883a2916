"""bench/edge_throughput.py still runs both sides on one clip and scores them alike (a smoke test; the
figures themselves belong in docs/benchmarks.md, not in a timed test)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO


def test_bench_runs_ultralytics_on_the_same_onnx_and_the_pipeline(
    model_dir: Path, synth_clip: Path, tmp_path: Path
) -> None:
    pytest.importorskip("ultralytics")
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(REPO / "bench" / "edge_throughput.py"), "--model", str(model_dir)]
    cmd += ["--clips", str(synth_clip.parent), "--sides", "ultralytics,pipeline", "--max-cameras", "0"]
    cmd += ["--json-out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    sides = json.loads(out.read_text())["sides"]
    ours, theirs = sides["pipeline"], sides["ultralytics"]
    assert ours["frames"] > 20 and abs(ours["frames"] - theirs["frames"]) <= 1, "same frames on both sides"
    assert ours["gt_events"] == theirs["gt_events"] > 0
    assert ours["ratio_runs"] and ours["ratio_runs"][0] == pytest.approx(ours["fps"] / theirs["fps"], 0.01)
    assert 0 <= ours["overhead_pct_per_frame"] < 100
    assert "throughput ratio pipeline / ultralytics" in proc.stdout
