"""``brightkitchen edge``: clear errors, exit code 2, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightkitchen.cli import app


def _run(*args: str):
    return CliRunner().invoke(app, ["edge", *args])


def test_replay_of_a_corrupt_video_is_a_clear_error(corrupt_video: Path, tmp_path: Path) -> None:
    result = _run("replay", str(corrupt_video), "--model", str(tmp_path), "--json")
    assert result.exit_code == 2
    assert "cannot read video file" in result.output and str(corrupt_video) in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_replay_checks_every_file_before_any_work(corrupt_video: Path, tmp_path: Path) -> None:
    from edge_agent.evidence import encode_mp4

    from .test_sources import _image

    clip = tmp_path / "c.mp4"
    clip.write_bytes(encode_mp4([_image(0)] * 3, 5))
    result = _run("replay", str(clip), str(corrupt_video))
    assert result.exit_code == 2 and f"cannot read video file {corrupt_video}" in result.output
    assert "events in" not in result.output  # the good first file was not replayed first


def test_replay_without_a_model_says_so(tmp_path: Path) -> None:
    from edge_agent.evidence import encode_mp4

    from .test_sources import _image

    clip = tmp_path / "c.mp4"
    clip.write_bytes(encode_mp4([_image(0)] * 3, 5))
    result = _run("replay", str(clip), "--model", str(tmp_path / "no-model"))
    assert result.exit_code == 2 and "no-model" in result.output


def test_run_with_a_bad_config_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        "agent: {id: box-1, restaurant: r-a}\nmodel: {path: m}\ncameras:\n"
        "  - {id: c1, source: x.mp4, rules: [{type: board_misuse, anchor: top}]}\n"
    )
    result = _run("run", "--config", str(path))
    assert result.exit_code == 2
    assert str(path) in result.output and "cameras[0].rules[0]" in result.output and "anchor" in result.output


def test_unknown_rule_type_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        "agent: {id: box-1, restaurant: r-a}\nmodel: {path: m}\ncameras:\n"
        "  - {id: c1, source: x.mp4, rules: [{type: no_gloves}]}\n"
    )
    result = _run("check-config", str(path))
    assert result.exit_code == 2 and "unknown rule type 'no_gloves'" in result.output


def test_run_with_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text(
        f"agent: {{id: box-1, restaurant: r-a}}\nmodel: {{path: {tmp_path / 'nope'}}}\n"
        f"outbox: {{path: {tmp_path / 'o.sqlite'}}}\ncameras:\n  - {{id: c1, source: x.mp4}}\n"
    )
    result = _run("run", "--config", str(path))
    assert result.exit_code == 2 and "model folder" in result.output


def test_replay_without_model_or_config_uses_the_shipped_model(tmp_path: Path) -> None:
    from edge_agent.evidence import encode_mp4

    from .test_sources import _image

    clip = tmp_path / "c.mp4"
    clip.write_bytes(encode_mp4([_image(0)] * 3, 5))
    result = _run("replay", str(clip))
    assert result.exit_code == 0, result.output
    assert f"0 events in {clip}" in result.output


def test_newest_model_goes_by_the_card_not_the_file_time(tmp_path: Path, model_dir: Path) -> None:
    import json
    import os
    import shutil

    from brightkitchen.model_card import newest_model

    for name, created in (("m-old", "2026-01-01T00:00:00Z"), ("m-new", "2026-06-01T00:00:00Z")):
        (tmp_path / name).mkdir()
        card = json.loads((model_dir / "card.json").read_text()) | {"created_at": created}
        (tmp_path / name / "card.json").write_text(json.dumps(card))
    os.utime(tmp_path / "m-new" / "card.json", (0, 0))  # a checkout sets file times in any order
    assert newest_model(tmp_path) == tmp_path / "m-new"
    shutil.rmtree(tmp_path / "m-new")
    shutil.rmtree(tmp_path / "m-old")
    with pytest.raises(FileNotFoundError, match="no model folder"):
        newest_model(tmp_path)
