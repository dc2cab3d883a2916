"""Config loading: every error names the file, the key path and the bad value; the example configs load."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from brightkitchen.config import ConfigError, key_path, load_config, parse_config
from edge_agent.config import EdgeConfig, load_edge_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
EDGE_YAML = CONFIGS / "edge.yaml"


def _edge_data() -> dict[str, Any]:
    return yaml.safe_load(EDGE_YAML.read_text(encoding="utf-8"))


def _write(tmp_path: Path, data: Any, name: str = "edge.yaml") -> Path:
    path = tmp_path / name
    path.write_text(
        data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False), encoding="utf-8"
    )
    return path


def _error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_edge_config(path)
    assert info.value.path == path
    return info.value


# --- the example configs -----------------------------------------------------------------------------------


def test_example_edge_config_loads() -> None:
    cfg = load_edge_config(EDGE_YAML)
    assert isinstance(cfg, EdgeConfig)
    assert [cam.id for cam in cfg.cameras] == ["prep-1", "cold-1"]
    rule_types = {rule.type for cam in cfg.cameras for rule in cam.rules}
    assert rule_types == {"board_misuse", "stacked_containers"}, "the example shows both rules"


def test_example_dashboard_config_loads() -> None:
    path = CONFIGS / "dashboard.yaml"
    if not path.is_file():
        pytest.skip("configs/dashboard.yaml does not exist yet")
    dashboard_config = pytest.importorskip("dashboard.config")
    cfg = dashboard_config.load_dashboard_config(path)
    assert isinstance(cfg, dashboard_config.DashboardConfig)


def test_a_trusted_proxy_that_is_not_an_address_is_named(tmp_path: Path) -> None:
    dashboard_config = pytest.importorskip("dashboard.config")
    data = yaml.safe_load((CONFIGS / "dashboard.yaml").read_text(encoding="utf-8"))
    data["http"]["trusted_proxies"] = ["10.0.0.0/8", "lb.internal"]
    path = _write(tmp_path, data, "dashboard.yaml")
    with pytest.raises(ConfigError) as info:
        dashboard_config.load_dashboard_config(path)
    assert info.value.path == path
    message = str(info.value)
    assert "http.trusted_proxies" in message and "'lb.internal' is not an IP address" in message


# --- errors name the file, the key path and the value ------------------------------------------------------


Edit = Callable[[dict[str, Any]], None]


BAD_VALUES: list[tuple[Edit, str, str]] = [
    (
        lambda d: d["cameras"][0]["rules"][0].update(min_duration_s=-3),
        "cameras[0].rules[0].min_duration_s",
        "-3",
    ),
    (
        lambda d: d["cameras"][1]["rules"][0].update(severity="urgent"),
        "cameras[1].rules[0].severity",
        "'urgent'",
    ),
    (lambda d: d["mqtt"].update(port="abc"), "mqtt.port", "'abc'"),
    (lambda d: d["mqtt"].update(port=70000), "mqtt.port", "70000"),
    (lambda d: d["agent"].update(id="box 01"), "agent.id", "'box 01'"),
    (lambda d: d["cameras"][1].update(fps=0), "cameras[1].fps", "0"),
    (
        lambda d: d["cameras"][0]["rules"][0].update(roi=[[0, "left"], [1, 0], [1, 1]]),
        "cameras[0].rules[0].roi[0][1]",
        "'left'",
    ),
    (
        lambda d: d["cameras"][0]["rules"][0].update(active_hours=["6-22"]),
        "cameras[0].rules[0].active_hours",
        "'6-22'",
    ),
    (lambda d: d["palette"].update(red="raw_meat"), "palette.red", "'raw_meat'"),
]


@pytest.mark.parametrize(
    ("edit", "key", "value"), [pytest.param(*case, id=f"{case[1]}={case[2]}") for case in BAD_VALUES]
)
def test_error_names_file_key_and_value(tmp_path: Path, edit: Edit, key: str, value: str) -> None:
    data = _edge_data()
    edit(data)
    path = _write(tmp_path, data)
    err = _error(path)
    assert len(err.problems) == 1, err.problems
    problem = err.problems[0]
    assert problem.startswith(f"{key}: "), problem
    assert value in problem, problem
    assert str(err) == f"{path}: {problem}"


def test_roi_outside_the_frame_is_explained(tmp_path: Path) -> None:
    data = _edge_data()
    data["cameras"][0]["rules"][0]["roi"] = [[0, 0], [1.5, 0], [1, 1]]
    problem = _error(_write(tmp_path, data)).problems[0]
    assert problem.startswith("cameras[0].rules[0].roi: ")
    assert "between 0 and 1" in problem


def test_missing_required_key(tmp_path: Path) -> None:
    data = _edge_data()
    del data["cameras"][0]["rules"][0]["type"]
    del data["model"]
    err = _error(_write(tmp_path, data))
    assert sorted(err.problems) == ["cameras[0].rules[0].type: Field required", "model: Field required"]
    # With several problems, every line still names the file.
    lines = str(err).splitlines()
    assert lines[0] == "invalid config"
    assert all(line.strip().startswith(f"{tmp_path / 'edge.yaml'}: ") for line in lines[1:])


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    data = _edge_data()
    data["mqtt"]["hots"] = "broker.local"
    data["cameras"][1]["colour"] = "red"
    data["telemetry"] = True
    problems = _error(_write(tmp_path, data)).problems
    assert sorted(p.split(":")[0] for p in problems) == ["cameras[1].colour", "mqtt.hots", "telemetry"]
    assert all("Extra inputs are not permitted" in p for p in problems)
    assert any("'broker.local'" in p for p in problems)


def test_cross_field_errors_name_their_section(tmp_path: Path) -> None:
    data = _edge_data()
    data["mqtt"]["password"] = "secret"  # the example already has password_file
    problems = _error(_write(tmp_path, data)).problems
    assert problems == ["mqtt: Value error, give password or password_file, not both"]


def test_duplicate_camera_ids(tmp_path: Path) -> None:
    data = _edge_data()
    data["cameras"][1]["id"] = "prep-1"
    problems = _error(_write(tmp_path, data)).problems
    assert problems == ["cameras: Value error, camera id 'prep-1' is used twice"]


def test_two_rules_of_a_camera_need_their_own_names(tmp_path: Path) -> None:
    """Episodes and their timing are looked up by rule name: a second unnamed board_misuse rule (another
    ROI) took over the first one's timing."""
    data = _edge_data()
    rules = data["cameras"][0]["rules"]
    rules.append({**rules[0], "name": None})
    rules[0]["name"] = None
    problems = _error(_write(tmp_path, data)).problems
    assert problems == [
        "cameras[0].rules: Value error, two rules are named 'board_misuse'; "
        "give each rule of a type its own name"
    ]
    rules[-1]["name"] = "counter-2"
    load_edge_config(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("agent:\n  id: box-01\n  restaurant: [r-0001\nmodel: {}\n", 4, 6),
        ("agent:\n  id: box-01\n bad: 1\n", 3, 2),
        ("agent:\n\tid: box-01\n", 2, 1),
    ],
)
def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path, text: str, line: int, column: int) -> None:
    path = _write(tmp_path, text)
    err = _error(path)
    assert err.problems[0].startswith(f"line {line}, column {column}: not valid YAML"), err.problems
    assert str(err).startswith(f"{path}: line {line}, column {column}")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    err = _error(path)
    assert str(err) == f"{path}: file not found"


def test_directory_instead_of_file(tmp_path: Path) -> None:
    err = _error(tmp_path)
    assert str(err).startswith(f"{tmp_path}: cannot read")


@pytest.mark.parametrize(("text", "kind"), [("- a\n- b\n", "list"), ("just text\n", "str")])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    assert _error(_write(tmp_path, text)).problems == [f"the top level must be a mapping, not {kind}"]


def test_empty_file_lists_the_required_sections(tmp_path: Path) -> None:
    problems = _error(_write(tmp_path, "# nothing yet\n")).problems
    assert problems == ["agent: Field required", "model: Field required", "cameras: Field required"]


def test_load_config_is_generic_and_parse_config_names_its_source() -> None:
    cfg = load_config(EDGE_YAML, EdgeConfig)
    assert cfg.agent.restaurant == "r-0001"
    data = copy.deepcopy(_edge_data())
    data["motion"]["pixel_threshold"] = 0
    with pytest.raises(ConfigError, match=r"^from-api: motion\.pixel_threshold: .* \(got 0\)$"):
        parse_config(data, EdgeConfig, "from-api")


def test_key_path() -> None:
    assert key_path(("cameras", 1, "rules", 0, "roi")) == "cameras[1].rules[0].roi"
    assert key_path(("mqtt", "tls", "ca_file")) == "mqtt.tls.ca_file"
    assert key_path((0, "id")) == "[0].id"
    assert key_path(()) == "<top level>"


# --- the CLI, once `brightkitchen edge check-config` exists ------------------------------------------------


def _check_config(*args: str) -> Any:
    from brightkitchen.cli import app

    runner = CliRunner()
    if runner.invoke(app, ["edge", "check-config", "--help"]).exit_code != 0:
        pytest.skip("`brightkitchen edge check-config` does not exist yet")
    return runner.invoke(app, ["edge", "check-config", *args])


def test_cli_check_config_accepts_the_example() -> None:
    result = _check_config(str(EDGE_YAML))
    assert result.exit_code == 0, result.output


def test_cli_check_config_reports_file_key_and_value(tmp_path: Path) -> None:
    data = _edge_data()
    data["cameras"][0]["rules"][0]["min_duration_s"] = -3
    path = _write(tmp_path, data)
    result = _check_config(str(path))
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    out = result.output  # Click >= 8.2 mixes stderr into output
    assert str(path) in out
    assert "cameras[0].rules[0].min_duration_s" in out
    assert "-3" in out


def test_readme_edge_config_example_is_valid() -> None:
    """The edge config shown in the README validates, so the README cannot drift from the schema."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"```yaml\n(agent:.*?)```", readme, re.S)
    assert block, "README has no edge config example"
    cfg = parse_config(yaml.safe_load(block.group(1)), EdgeConfig, "README.md")
    assert {r.type for r in cfg.cameras[0].rules} == {"board_misuse", "stacked_containers"}
