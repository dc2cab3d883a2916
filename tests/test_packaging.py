"""The edge box never gets torch or ultralytics: not from pip metadata, not by importing edge or CLI code."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
import textwrap

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

DIST = "bright-kitchen"
HEAVY = ("torch", "torchvision", "ultralytics")


def _requirements(dist: str, extras: frozenset[str] = frozenset()) -> list[Requirement]:
    """The requirements of an installed distribution that apply with these extras (none: the core only)."""
    reqs = [Requirement(line) for line in md.requires(dist) or []]
    envs = [{"extra": e} for e in sorted(extras)] or [{"extra": ""}]
    return [r for r in reqs if r.marker is None or any(r.marker.evaluate(env) for env in envs)]


def _closure(extras: frozenset[str]) -> dict[str, str]:
    """Every distribution that ``pip install bright-kitchen[extras]`` pulls, as far as this venv knows.

    Maps each name to the chain that pulls it, for the failure message. Dependencies that are not
    installed here cannot be followed further; their own name is still checked.
    """
    chains: dict[str, str] = {}
    wanted: dict[str, frozenset[str]] = {}
    todo = [(DIST, extras, f"{DIST}[{','.join(sorted(extras))}]")]
    while todo:
        name, wanted_extras, chain = todo.pop()
        try:
            deps = _requirements(name, wanted_extras)
        except md.PackageNotFoundError:
            continue
        for dep in deps:
            key, dep_extras = canonicalize_name(dep.name), frozenset(dep.extras)
            if key in wanted and dep_extras <= wanted[key]:
                continue
            wanted[key] = wanted.get(key, frozenset()) | dep_extras
            chains.setdefault(key, f"{chain} -> {dep}")
            todo.append((key, wanted[key], chains[key]))
    return chains


@pytest.mark.parametrize("extras", [frozenset(), frozenset({"edge"})], ids=["core", "edge"])
def test_edge_install_pulls_no_torch(extras: frozenset[str]) -> None:
    direct = {canonicalize_name(r.name) for r in _requirements(DIST, extras)}
    assert not direct & set(HEAVY), f"{DIST}{sorted(extras)} requires {sorted(direct & set(HEAVY))}"
    pulled = _closure(extras)
    heavy = [pulled[name] for name in HEAVY if name in pulled]
    assert not heavy, "the edge install would pull:\n" + "\n".join(heavy)


def test_edge_extra_is_what_the_edge_needs() -> None:
    edge = {canonicalize_name(r.name) for r in _requirements(DIST, frozenset({"edge"}))}
    needed = {"numpy", "opencv-python-headless", "onnxruntime", "paho-mqtt", "pydantic", "pyyaml", "tqdm"}
    assert needed <= edge


def test_train_extra_does_pull_torch() -> None:
    """Guards the two tests above against reading the wrong (or empty) metadata."""
    train = {canonicalize_name(r.name) for r in _requirements(DIST, frozenset({"train"}))}
    assert {"torch", "ultralytics"} <= train


def _run_isolated(code: str) -> None:
    """Run ``code`` in a fresh interpreter, then fail if it imported torch, torchvision or ultralytics."""
    check = textwrap.dedent(
        f"""
        import sys
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
        if heavy:
            sys.exit("imported: " + ", ".join(heavy[:10]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + check], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def test_edge_agent_modules_import_without_torch() -> None:
    _run_isolated(
        """
        import importlib, pkgutil
        import edge_agent

        def fail(name):
            raise SystemExit(f"cannot import package {name}")

        names = ["edge_agent"] + [
            m.name
            for m in pkgutil.walk_packages(edge_agent.__path__, "edge_agent.", onerror=fail)
            if m.name.rsplit(".", 1)[-1] != "__main__"
        ]
        for name in names:
            importlib.import_module(name)
        print(len(names), "edge_agent modules imported")
        """
    )


def test_cli_and_its_help_import_without_torch() -> None:
    _run_isolated(
        """
        import brightkitchen.cli

        for args in (["--help"], ["edge", "--help"], ["dashboard", "--help"], ["train", "--help"],
                     ["demo", "--help"], ["--version"]):
            try:
                brightkitchen.cli.app(args, prog_name="brightkitchen")
            except SystemExit as exc:
                if exc.code not in (0, None):
                    raise SystemExit(f"{args} exited {exc.code}")
        """
    )
