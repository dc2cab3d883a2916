"""The model registry: check an uploaded model archive, keep it in the media store, list what is there.
The web routes and ``brightkitchen dashboard models`` both go through these functions.

An archive is a ``.tar.gz``/``.tar`` or ``.zip`` of one model folder (``brightkitchen.model_card``:
``model.onnx``, ``labels.json``, ``card.json``, optionally ``README.md``), read in memory and never
unpacked to disk here. It is accepted only when the card parses, ``model.onnx`` has the card's sha256 and
``labels.json`` lists the card's classes in order. The archive is stored byte for byte: edge agents
download exactly what was checked, and verify its sha256 themselves.

Example::

    entry = register_model(session, store, archive_bytes, report_md=md, report=json, user_id=7)
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import ColumnElement, case, func, select, true
from sqlalchemy.orm import Session

from brightkitchen.model_card import CARD_FILE, LABELS_FILE, MODEL_FILE, LabelInfo, ModelCard
from dashboard.admin import audit
from dashboard.media import MediaStore
from dashboard.models import Agent, Event, ModelVersion

MAX_MEMBERS = 64
MAX_UNPACKED_BYTES = 1024**3  # a model folder is ~10 MB; this stops archive bombs
_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
RestaurantScope = Callable[[ColumnElement[str]], ColumnElement[bool]]  # a restaurant id column → WHERE


class RegistryError(ValueError):
    """An archive or report that cannot be registered; the message says what to fix."""


class DuplicateModel(RegistryError):
    """That name and version are already in the registry."""


@dataclass(frozen=True)
class CheckedArchive:
    """What the checks found in an archive."""

    card: ModelCard
    content_type: str
    extension: str


def _read_members(blob: bytes) -> tuple[dict[str, bytes], str, str]:
    """Regular files of a zip or tar archive by path (``./`` stripped), its content type and extension."""
    files: dict[str, bytes] = {}
    total = 0

    def add(name: str, size: int, read: Any) -> None:
        nonlocal total
        total += size
        if len(files) >= MAX_MEMBERS or total > MAX_UNPACKED_BYTES:
            raise RegistryError(f"archive holds over {MAX_MEMBERS} files or {MAX_UNPACKED_BYTES} bytes")
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise RegistryError(f"archive member {name!r} points outside the archive")
        files[str(path)] = read()

    if zipfile.is_zipfile(io.BytesIO(blob)):
        with zipfile.ZipFile(io.BytesIO(blob)) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    add(info.filename, info.file_size, lambda info=info: zf.read(info))
        return files, "application/zip", "zip"
    try:
        with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
            for member in tf.getmembers():
                if member.isfile():
                    add(member.name, member.size, lambda m=member: tf.extractfile(m).read())  # type: ignore[union-attr]
    except tarfile.TarError as exc:
        raise RegistryError(f"not a .tar.gz, .tar or .zip archive: {exc}") from None
    gz = blob[:2] == b"\x1f\x8b"
    return files, "application/gzip" if gz else "application/x-tar", "tar.gz" if gz else "tar"


def archive_folder(folder: Path) -> bytes:
    """A model folder as a ``.tar.gz`` holding the folder by its name (``tar czf - -C parent name``)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    return buf.getvalue()


def check_archive(blob: bytes) -> CheckedArchive:
    """Validate a model archive; raises ``RegistryError`` naming the file and the problem."""
    files, content_type, extension = _read_members(blob)
    models = [p for p in files if PurePosixPath(p).name == MODEL_FILE]
    if len(models) != 1:
        raise RegistryError(f"the archive holds {len(models)} {MODEL_FILE} files, expected exactly one")
    folder = PurePosixPath(models[0]).parent

    def member(name: str) -> bytes:
        key = str(folder / name)
        if key not in files:
            raise RegistryError(f"{name} is missing beside {MODEL_FILE} (in {str(folder)!r} of the archive)")
        return files[key]

    try:
        card = ModelCard.model_validate_json(member(CARD_FILE))
    except ValidationError as exc:
        raise RegistryError(f"{CARD_FILE} is not a valid model card: {exc}") from None
    try:
        labels = [LabelInfo.model_validate(x) for x in json.loads(member(LABELS_FILE))]
    except (ValueError, TypeError) as exc:
        raise RegistryError(f"{LABELS_FILE} is not a list of labels: {exc}") from None
    digest = hashlib.sha256(member(MODEL_FILE)).hexdigest()
    if digest != card.sha256:
        raise RegistryError(f"{MODEL_FILE} has sha256 {digest}, but {CARD_FILE} says {card.sha256}")
    if [x.name for x in labels] != card.classes:
        raise RegistryError(
            f"{LABELS_FILE} lists {[x.name for x in labels]}, {CARD_FILE} classes are {card.classes}"
        )
    if (spec := card.food_classifier) is not None:
        digest = hashlib.sha256(member(spec.file)).hexdigest()
        if digest != spec.sha256:
            raise RegistryError(f"{spec.file} has sha256 {digest}, but {CARD_FILE} says {spec.sha256}")
    for field, value, limit in (("name", card.name, 64), ("version", card.version, 32)):
        if len(value) > limit or not _REF_RE.match(value):
            raise RegistryError(
                f"{CARD_FILE} {field} {value!r} must be 1-{limit} letters, digits, '.', '_' or '-'"
            )
    return CheckedArchive(card, content_type, extension)


def parse_report(report_json: bytes | None) -> dict[str, Any] | None:
    """The JSON report of ``train compare`` (an object), or None."""
    if not report_json:
        return None
    try:
        report = json.loads(report_json)
    except ValueError as exc:
        raise RegistryError(f"report.json is not JSON: {exc}") from None
    if not isinstance(report, dict):
        raise RegistryError("report.json must hold a JSON object")
    return report


def register_model(
    session: Session,
    store: MediaStore,
    blob: bytes,
    report_md: str | None = None,
    report: dict[str, Any] | None = None,
    user_id: int | None = None,
) -> ModelVersion:
    """Check and store an archive, add its row (flushed, not committed) and audit it."""
    checked = check_archive(blob)
    card = checked.card
    existing = session.scalar(
        select(ModelVersion.id).where(ModelVersion.name == card.name, ModelVersion.version == card.version)
    )
    if existing is not None:
        raise DuplicateModel(f"model {card.name} {card.version} is already in the registry (id {existing})")
    archive_sha256 = hashlib.sha256(blob).hexdigest()
    key = f"models/{card.name}/{card.version}/{archive_sha256[:16]}.{checked.extension}"
    store.put(key, blob, checked.content_type)
    entry = ModelVersion(
        name=card.name,
        version=card.version,
        sha256=card.sha256,
        card=card.model_dump(mode="json"),
        archive_key=key,
        archive_sha256=archive_sha256,
        archive_bytes=len(blob),
        archive_type=checked.content_type,
        report_md=report_md,
        report=report,
        uploaded_by=user_id,
    )
    session.add(entry)
    session.flush()
    audit(session, user_id, "upload_model", "model", str(entry.id), name=card.name, version=card.version)
    return entry


class ModelOut(BaseModel):
    """A registry entry as the list page, the API and ``models list`` show it."""

    id: int
    name: str
    version: str
    map50: float | None = Field(None, description="mean over the card's classes with instances")
    sha256: str
    archive_sha256: str
    archive_bytes: int
    uploaded_at: datetime
    card: dict[str, Any]
    report: dict[str, Any] | None
    agents: list[str] = []
    reviewed: int = 0
    false_positive: int = 0
    fp_rate: float | None = None


def mean_map50(metrics: dict[str, Any]) -> float | None:
    """The held-out mAP50 of a card (``train eval --update-card``): mean over classes that occur."""
    rows = [r for r in metrics.get("per_class") or [] if isinstance(r, dict) and r.get("instances")]
    return sum(float(r["map50"]) for r in rows) / len(rows) if rows else None


def model_summaries(
    session: Session, scope: RestaurantScope = lambda _restaurant: true(), only: int | None = None
) -> list[ModelOut]:
    """Registry entries (or the one with id ``only``), newest first, with the agents running each and the
    inspectors' verdicts on its alerts, counted over the restaurants ``scope`` lets through (all by default).
    """
    query = select(ModelVersion).order_by(ModelVersion.uploaded_at.desc(), ModelVersion.id.desc())
    rows = list(session.scalars(query.where(ModelVersion.id == only) if only is not None else query))
    running: dict[tuple[str, str], list[str]] = {}
    for a in session.scalars(
        select(Agent)
        .where(scope(Agent.restaurant_id), Agent.model_name.is_not(None))
        .order_by(Agent.restaurant_id, Agent.agent_id)
    ):
        running.setdefault((a.model_name or "", a.model_version or ""), []).append(
            f"{a.restaurant_id}/{a.agent_id}"
        )
    verdicts = {
        (name, version): (n, int(fp or 0))
        for name, version, n, fp in session.execute(
            select(
                Event.model_name,
                Event.model_version,
                func.count(),
                func.sum(case((Event.verdict == "false_positive", 1), else_=0)),
            )
            .where(scope(Event.restaurant_id), Event.verdict.is_not(None))
            .group_by(Event.model_name, Event.model_version)
        )
    }
    out = []
    for m in rows:
        n, fp = verdicts.get((m.name, m.version), (0, 0))
        out.append(
            ModelOut(
                id=m.id,
                name=m.name,
                version=m.version,
                map50=mean_map50(m.card.get("metrics") or {}),
                sha256=m.sha256,
                archive_sha256=m.archive_sha256,
                archive_bytes=m.archive_bytes,
                uploaded_at=m.uploaded_at,
                card=m.card,
                report=m.report,
                agents=running.get((m.name, m.version), []),
                reviewed=n,
                false_positive=fp,
                fp_rate=fp / n if n else None,
            )
        )
    return out


def find_model(session: Session, name: str, version: str) -> ModelVersion | None:
    """The registry entry of that name and version, if there is one."""
    return session.scalar(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    )
