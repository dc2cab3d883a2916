"""``brightkitchen dashboard models``: the model registry for ML staff, without curl or a token.

The same checks and state changes as the ``/models`` page and ``/api/v1/models`` (``dashboard.registry``,
``dashboard.deploy``), run directly against the database, media store and broker of the config::

    brightkitchen dashboard models upload --config configs/dashboard.yaml models/bk-detector-1.1.0 \
        --report-md reports/1.1.0/report.md --report-json reports/1.1.0/report.json
    brightkitchen dashboard models rollout --config configs/dashboard.yaml --model bk-detector:1.1.0 \
        --canary r-0001/box-1 --agent r-0002/box-1
    brightkitchen dashboard models promote --config configs/dashboard.yaml 7
    brightkitchen dashboard models abort --config configs/dashboard.yaml 7
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from dashboard.cli_config import ConfigOpt, load_or_exit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dashboard.config import DashboardConfig

T = TypeVar("T")

app = typer.Typer(
    help="Model registry: upload a model, list the registry, roll a model out to a canary agent, then "
    "promote it to the others or abort it (what the /models page does, straight on the database and "
    "broker).",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _registry(config: Path, action: Callable[[DashboardConfig, Session], T]) -> T:
    """Run ``action(cfg, session)``; a registry, rollout or broker error becomes its message and exit 1."""
    from dashboard.commands import CommandPublishError
    from dashboard.db import open_database
    from dashboard.registry import RegistryError
    from dashboard.rollout import RolloutError

    cfg = load_or_exit(config)
    _, sessions = open_database(cfg)
    try:
        with sessions() as session:
            return action(cfg, session)
    except (RegistryError, RolloutError, CommandPublishError) as exc:
        _fail(str(exc))


def _public_url(config: Path, cfg: DashboardConfig) -> str:
    if not cfg.http.public_url:
        _fail(
            f"{config}: http.public_url is not set; agents download the model from it "
            "(e.g. https://dashboard.example.com)",
            code=2,
        )
    return cfg.http.public_url


@app.command("upload")
def models_upload(
    config: ConfigOpt,
    source: Annotated[
        Path,
        typer.Argument(
            exists=True,
            help="a model folder (model.onnx, labels.json, card.json from `train export`) or its "
            ".tar.gz, .tar or .zip",
        ),
    ],
    report_md: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="report.md of `train compare`, shown on the model page"
        ),
    ] = None,
    report_json: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="report.json of `train compare` (its verdict is listed)"
        ),
    ] = None,
) -> None:
    """Check a model and add it to the registry.

    Refused unless its card parses, model.onnx has the card's sha256 and labels.json lists the card's
    classes; one entry per name and version. Prints NAME:VERSION and its id.
    """
    from dashboard.media import open_store
    from dashboard.registry import RegistryError, archive_folder, parse_report, register_model

    def action(cfg: DashboardConfig, s: Session) -> str:
        blob = archive_folder(source) if source.is_dir() else source.read_bytes()
        limit = cfg.registry.max_archive_bytes
        if len(blob) > limit:
            _fail(f"{source}: {len(blob)} bytes archived, over registry.max_archive_bytes ({limit})")
        try:
            report = parse_report(report_json.read_bytes() if report_json else None)
            md = report_md.read_bytes().decode("utf-8", "replace") if report_md else None
            entry = register_model(s, open_store(cfg.media), blob, md, report)
        except RegistryError as exc:
            _fail(f"{source}: {exc}")
        s.commit()
        return f"model {entry.name}:{entry.version} added to the registry (id {entry.id})"

    typer.echo(_registry(config, action))


@app.command("list")
def models_list(
    config: ConfigOpt,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the entries in full, as GET /api/v1/models gives them")
    ] = False,
) -> None:
    """List the registry, newest first.

    With the card's mean mAP50, the comparison report's verdict, how many agents run each model and the
    false positives among its reviewed alerts.
    """
    import json

    from dashboard.registry import model_summaries

    rows = _registry(config, lambda _cfg, s: model_summaries(s))
    if as_json:
        typer.echo(json.dumps([m.model_dump(mode="json") for m in rows], indent=2))
        return
    if not rows:
        typer.echo("the registry is empty")
        return
    typer.echo(
        f"{'ID':>4}  {'MODEL':32} {'UPLOADED':16}  {'mAP50':>5}  {'REPORT':8} {'AGENTS':>6}  FALSE POS."
    )
    for m in rows:
        map50 = "-" if m.map50 is None else f"{m.map50:.3f}"
        verdict = str((m.report or {}).get("verdict", "-"))
        fp = f"{m.false_positive}/{m.reviewed} reviewed" if m.reviewed else "-"
        typer.echo(
            f"{m.id:>4}  {m.name + ':' + m.version:32} {m.uploaded_at:%Y-%m-%d %H:%M}  {map50:>5}  "
            f"{verdict:8} {len(m.agents):>6}  {fp}"
        )


@app.command("rollout")
def models_rollout(
    config: ConfigOpt,
    model: Annotated[str, typer.Option(help="NAME:VERSION, as `models list` shows it")],
    canary: Annotated[str, typer.Option(help="restaurant/agent that gets the model first")],
    agent: Annotated[
        list[str] | None, typer.Option(help="restaurant/agent that gets it on promote (repeat)")
    ] = None,
) -> None:
    """Roll a model out to a canary agent first; prints the rollout id.

    The canary gets switch_model over MQTT now, the other agents on `models promote`. Needs http.public_url
    in the config: the agents download the model from there.
    """
    from dashboard.deploy import begin_rollout
    from dashboard.registry import find_model

    name, sep, version = model.partition(":")
    if not (name and sep and version):
        raise typer.BadParameter(
            f"{model!r}: expected NAME:VERSION, e.g. bk-detector:1.1.0", param_hint="--model"
        )

    def action(cfg: DashboardConfig, s: Session) -> str:
        base_url = _public_url(config, cfg)
        entry = find_model(s, name, version)
        if entry is None:
            _fail(f"no model {model} in the registry (see `brightkitchen dashboard models list`)")
        rollout = begin_rollout(s, cfg, entry, [canary, *(agent or [])], base_url)
        return (
            f"rollout {rollout.id}: {model} sent to the canary {canary}; {len(rollout.targets) - 1} more "
            f"agent(s) on `brightkitchen dashboard models promote --config {config} {rollout.id}` once the "
            "canary runs it without errors (state canary_ok on the model page)"
        )

    typer.echo(_registry(config, action))


@app.command("promote")
def models_promote(
    config: ConfigOpt,
    rollout_id: Annotated[int, typer.Argument(help="the id `models rollout` printed")],
) -> None:
    """Send the model to the rollout's other agents, after a good canary.

    Only a rollout in state canary_ok can be promoted: the canary replied ok, then reported the model in
    its stats without camera errors.
    """
    from dashboard.deploy import promote_rollout
    from dashboard.models import Rollout

    def action(cfg: DashboardConfig, s: Session) -> str:
        base_url = _public_url(config, cfg)
        rollout = s.get(Rollout, rollout_id)
        if rollout is None:
            _fail(f"no rollout {rollout_id}")
        sent = promote_rollout(s, cfg, rollout, base_url)
        return f"rollout {rollout_id} promoted: sent to {len(sent)} more agent(s), state {rollout.state}"

    typer.echo(_registry(config, action))


@app.command("abort")
def models_abort(
    config: ConfigOpt,
    rollout_id: Annotated[int, typer.Argument(help="the id `models rollout` printed")],
) -> None:
    """Stop an unfinished rollout and send the agents that had switched back to their previous model.

    Agents not yet sent the model are skipped. Each agent that switched gets switch_model for the model it
    ran when the rollout started, which must be in the registry; the model page follows their replies.
    """
    from dashboard.deploy import abort_rollout
    from dashboard.models import Rollout

    def action(cfg: DashboardConfig, s: Session) -> str:
        rollout = s.get(Rollout, rollout_id)
        if rollout is None:
            _fail(f"no rollout {rollout_id}")
        abort_rollout(s, cfg, rollout)
        back = [t for t in rollout.targets if t.state == "reverting"]
        lines = [f"rollout {rollout_id} aborted: {len(back)} agent(s) sent back to their previous model"]
        lines += [
            f"  {t.restaurant_id}/{t.agent_id}: {t.message}"
            for t in rollout.targets
            if t.state == "revert_failed"
        ]
        return "\n".join(lines)

    typer.echo(_registry(config, action))
