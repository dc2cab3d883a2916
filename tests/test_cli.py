"""The ``brightkitchen`` command: help and version for the root and every group, both entry points."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brightkitchen import __version__
from brightkitchen.cli import app

REPO = Path(__file__).resolve().parent.parent
GROUPS = {
    "edge": "Edge agent",
    "dashboard": "dashboard",
    "train": "training",
    "demo": "demo",
}


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), prog_name="brightkitchen", env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_root_help_lists_every_group() -> None:
    code, out = _invoke("--help")
    assert code == 0, out
    assert "Usage: brightkitchen" in out
    assert "cutting-board misuse" in out
    for group in [*GROUPS, "schema"]:
        assert group in out


def test_no_arguments_shows_help() -> None:
    code, out = _invoke()
    assert "Usage: brightkitchen" in out
    assert code in (0, 2)  # Click exits 2 on a missing sub-command since 8.2, 0 before


def test_version() -> None:
    code, out = _invoke("--version")
    assert code == 0
    assert out.strip() == f"brightkitchen {__version__}"


@pytest.mark.parametrize("group", GROUPS)
def test_group_help_explains_itself(group: str) -> None:
    code, out = _invoke(group, "--help")
    assert code == 0, out
    assert f"Usage: brightkitchen {group}" in out
    assert GROUPS[group].lower() in out.lower()


def test_every_command_has_help() -> None:
    """Walk the whole command tree: each command and group has a help text and its --help exits 0."""
    import typer.main

    def walk(command: object, path: list[str]) -> list[list[str]]:
        found = [path]
        for name, sub in getattr(command, "commands", {}).items():
            found += walk(sub, [*path, name])
        return found

    root = typer.main.get_command(app)
    for path in walk(root, []):
        code, out = _invoke(*path, "--help")
        assert code == 0, f"brightkitchen {' '.join(path)} --help exited {code}:\n{out}"
        command = root
        for name in path:
            command = command.commands[name]  # type: ignore[attr-defined]
        assert (command.help or command.short_help or "").strip(), (
            f"`brightkitchen {' '.join(path)}` has no help"
        )


def test_unknown_log_level_is_an_error() -> None:
    code, out = _invoke("--log-level", "LOUD", "schema", "--check", "--out", os.devnull)
    assert code == 2, out  # a usage error, not a traceback
    assert "unknown log level 'LOUD'" in out
    proc = _run([sys.executable, "-m", "brightkitchen", "schema", "--check"], BRIGHTKITCHEN_LOG_LEVEL="LOUD")
    assert proc.returncode == 2
    assert "BRIGHTKITCHEN_LOG_LEVEL" in proc.stderr and "Traceback" not in proc.stderr


def test_schema_check(tmp_path: Path) -> None:
    out_file = tmp_path / "schema.json"
    code, out = _invoke("schema", "--check", "--out", str(out_file))
    assert code == 1 and "does not exist" in out and "brightkitchen schema" in out
    code, out = _invoke("schema", "--out", str(out_file))
    assert code == 0, out
    assert out_file.read_text(encoding="utf-8").endswith("}\n")
    code, out = _invoke("schema", "--check", "--out", str(out_file))
    assert code == 0, out
    out_file.write_text(out_file.read_text(encoding="utf-8").replace('"maxLength": 64', '"maxLength": 65', 1))
    code, out = _invoke("schema", "--check", "--out", str(out_file))
    assert code == 1 and "differs" in out and "brightkitchen schema" in out


def test_committed_schema_is_current() -> None:
    code, out = _invoke("schema", "--check", "--out", str(REPO / "docs" / "mqtt-schema.json"))
    assert code == 0, out


def _run(argv: list[str], **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"COLUMNS": "200", "NO_COLOR": "1"} | env_vars
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO, env=env)


def test_python_dash_m() -> None:
    proc = _run([sys.executable, "-m", "brightkitchen", "--help"])
    assert proc.returncode == 0, proc.stderr
    assert "Usage:" in proc.stdout and "edge" in proc.stdout


def test_console_script() -> None:
    script = Path(sys.executable).parent / "brightkitchen"
    found = str(script) if script.is_file() else shutil.which("brightkitchen")
    assert found, "the `brightkitchen` console script is not installed; run `pip install -e .`"
    proc = _run([found, "--help"])
    assert proc.returncode == 0, proc.stderr
    assert "Usage: brightkitchen" in proc.stdout
    proc = _run([found, "--version"])
    assert proc.returncode == 0 and proc.stdout.strip() == f"brightkitchen {__version__}"
