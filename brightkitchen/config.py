"""Loading YAML configs into pydantic models, with errors that name the file, the key path and the problem.

Example::

    cfg = load_config(Path("configs/edge.yaml"), EdgeConfig)
    # ConfigError: configs/edge.yaml: cameras[1].rules[0].min_duration_s: Input should be greater
    #              than 0 (got -3)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file that cannot be used; the message is meant for the person who wrote the file."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems
        lines = [f"{self.path}: {p}" for p in problems]
        super().__init__("invalid config\n  " + "\n  ".join(lines) if len(lines) > 1 else lines[0])


def key_path(loc: tuple[int | str, ...]) -> str:
    """``('cameras', 1, 'rules', 0, 'roi')`` → ``cameras[1].rules[0].roi``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def format_validation_error(exc: ValidationError) -> list[str]:
    """One line per problem: key path, pydantic's message, and the offending value where it is short."""
    problems = []
    for err in exc.errors():
        # Drop pydantic's internal union/tag segments such as 'function-after[...]'.
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        line = f"{key_path(loc)}: {err['msg']}"
        value = err.get("input")
        if err["type"] not in ("missing",) and not isinstance(value, dict | list) and len(repr(value)) < 60:
            line += f" (got {value!r})"
        problems.append(line)
    return problems


def parse_config(data: Any, model: type[M], source: Path | str = "<config>") -> M:
    """Validate already-loaded data; ``source`` is used in error messages."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"the top level must be a mapping, not {type(data).__name__}"])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_validation_error(exc)) from None


def load_config(path: Path | str, model: type[M]) -> M:
    """Read a YAML file and validate it; raises ``ConfigError`` naming the file and the key."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except OSError as exc:
        raise ConfigError(path, [f"cannot read: {exc.strerror}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(path, [f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return parse_config(data, model, path)
