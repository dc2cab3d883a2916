"""``brightkitchen edge``: run the agent beside the cameras, or replay a video file through it."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from edge_agent.replay import ReplayEvent

app = typer.Typer(help="Edge agent: cameras → detector → rules → alerts over MQTT.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@app.command("check-config")
def check_config(config: Annotated[Path, typer.Argument(help="edge config YAML")]) -> None:
    """Validate an edge config; errors name the file, the key and the value."""
    from brightkitchen.config import ConfigError
    from edge_agent.config import load_edge_config

    try:
        cfg = load_edge_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    rules = sum(len(c.rules) for c in cfg.cameras)
    typer.echo(f"{config}: OK ({len(cfg.cameras)} cameras, {rules} rules)")


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="edge config YAML")],
    until_done: Annotated[
        bool, typer.Option("--until-done", help="exit once every camera's video file has ended and is sent")
    ] = False,
) -> None:
    """Run the agent: cameras → detector → rules → events with evidence → MQTT (SIGTERM/Ctrl-C stops)."""
    from brightkitchen.config import ConfigError
    from edge_agent.agent import Agent
    from edge_agent.config import load_edge_config
    from edge_agent.detector import ModelLoadError

    try:
        cfg = load_edge_config(config)
        agent = Agent(cfg, config)
    except (ConfigError, ModelLoadError, OSError) as exc:
        raise _fail(str(exc)) from None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.run(stop, until_done=until_done)


@app.command()
def replay(
    videos: Annotated[list[Path], typer.Argument(help="video files (one or more), replayed one by one")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="edge config; its first camera")
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", help="model folder (overrides the config; default: the newest in models/)"
        ),
    ] = None,
    camera: Annotated[
        str | None, typer.Option(help="camera id to report (default: config or file name)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per event")] = False,
) -> None:
    """Run the pipeline over video files without a broker and list the events (times from each video's
    start; JSON lines name their video)."""
    from brightkitchen.config import ConfigError
    from brightkitchen.model_card import newest_model
    from edge_agent.config import load_edge_config
    from edge_agent.detector import ModelLoadError
    from edge_agent.replay import replay_video
    from edge_agent.sources import SourceError, check_video_file

    try:
        cfg = load_edge_config(config) if config else None
        if model is None and cfg is None:
            model = newest_model()
        for video in videos:  # every file readable before hours of work on the first ones
            check_video_file(video)
        for video in videos:
            events = replay_video(video, model, cfg, camera=camera, progress=True)
            _print_events(video, events, as_json)
    except (ConfigError, ModelLoadError, SourceError, ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None


def _print_events(video: Path, events: list[ReplayEvent], as_json: bool) -> None:
    for ev in events:
        if as_json:
            typer.echo(json.dumps({"video": str(video), **ev.as_dict()}, ensure_ascii=False))
        else:
            end = f"{ev.end:.1f}" if ev.end is not None else "…"
            facts = ", ".join(f"{k}={v}" for k, v in ev.details.items())
            typer.echo(
                f"{ev.start:7.1f}–{end:>6} s  alert {ev.alert:.1f} s  {ev.rule:<19} {ev.severity:<8} "
                f"score {ev.score:.2f}  {facts}"
            )
    if not as_json:
        typer.echo(f"{len(events)} events in {video}")
