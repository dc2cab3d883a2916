"""The model registry: upload validation, roles, pages, and the download token (its model only, expiring)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from brightkitchen.contract import AvailabilityMessage, encode, topic_for, utc_now
from dashboard.config import MqttSection
from dashboard.models import AuditLog, ModelVersion, Rollout, now_utc

REPORT = {"verdict": "promote", "per_class": {"board_red": {"baseline": 0.5, "candidate": 0.6}}}


def tar_gz(folder: Path, arcname: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(folder, arcname=arcname or folder.name)
    return buf.getvalue()


def upload(client: Any, blob: bytes, report: bool = True) -> Any:
    files: dict[str, tuple[str, bytes]] = {"archive": ("model.tar.gz", blob)}
    if report:
        files["report_md"] = ("report.md", b"# Candidate vs baseline\n\nverdict: promote\n")
        files["report_json"] = ("report.json", json.dumps(REPORT).encode())
    return client.post("/api/v1/models", files=files, headers={"X-CSRF-Token": client.csrf})


def test_upload_checks_stores_and_shows_the_model(
    login, tenants, make_model_folder, db_config, sessions
) -> None:
    ml = login("ml")
    blob = tar_gz(make_model_folder(version="1.0.0"))
    r = upload(ml, blob)
    assert r.status_code == 201, r.text
    model = r.json()
    assert (model["name"], model["version"]) == ("tiny", "1.0.0")
    assert model["archive_sha256"] == hashlib.sha256(blob).hexdigest()
    assert model["map50"] == pytest.approx(0.45) and model["report"]["verdict"] == "promote"
    with sessions() as s:
        entry = s.get(ModelVersion, model["id"])
        assert (Path(db_config.media.path) / entry.archive_key).read_bytes() == blob
        assert s.scalar(select(AuditLog.action).where(AuditLog.target_type == "model")) == "upload_model"
    assert [m["version"] for m in ml.get("/api/v1/models").json()] == ["1.0.0"]
    page = ml.get(f"/models/{model['id']}").text
    assert "Candidate vs baseline" in page and "promote" in page and "mean mAP50 0.450" in page
    assert "<td>board_blue</td><td>2</td>" in page
    assert "tiny 1.0.0" in ml.get("/models").text
    again = upload(ml, blob)
    assert again.status_code == 409 and "already in the registry" in again.json()["detail"]


def _tampered(folder: Path) -> Path:
    (folder / "model.onnx").write_bytes((folder / "model.onnx").read_bytes() + b"\0")
    return folder


def _relabelled(folder: Path) -> Path:
    labels = json.loads((folder / "labels.json").read_text())
    labels[0]["name"] = "board_purple"
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


def _with_classifier(folder: Path, data: bytes | None) -> Path:
    """A card naming a food classifier whose sha256 is that of b"classifier"; its file holds ``data``."""
    card = json.loads((folder / "card.json").read_text())
    card["food_classifier"] = {
        "sha256": hashlib.sha256(b"classifier").hexdigest(),
        "input_size": 96,
        "classes": ["raw_meat", "cooked_food"],
    }
    (folder / "card.json").write_text(json.dumps(card))
    if data is not None:
        (folder / "food_classifier.onnx").write_bytes(data)
    return folder


def _without_card(folder: Path) -> Path:
    (folder / "card.json").unlink()
    return folder


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (_tampered, "sha256"),
        (_relabelled, "labels.json lists"),
        (_without_card, "card.json is missing"),
        (lambda f: _with_classifier(f, b"tampered"), "food_classifier.onnx has sha256"),
        (lambda f: _with_classifier(f, None), "food_classifier.onnx is missing"),
    ],
    ids=["model-sha256", "classes", "no-card", "classifier-sha256", "no-classifier"],
)
def test_bad_archives_are_refused(
    login, tenants, make_model_folder, spoil: Callable[[Path], Path], expected: str
) -> None:
    ml = login("ml")
    r = upload(ml, tar_gz(spoil(make_model_folder())), report=False)
    assert r.status_code == 422 and expected in r.json()["detail"], r.text
    assert ml.get("/api/v1/models").json() == []


def test_zip_is_accepted_and_junk_is_not(login, tenants, make_model_folder) -> None:
    ml = login("ml")
    folder = make_model_folder(version="2.0.0")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path in folder.iterdir():
            zf.write(path, f"tiny-2.0.0/{path.name}")
    assert upload(ml, buf.getvalue(), report=False).status_code == 201
    junk = upload(ml, b"not an archive at all", report=False)
    assert junk.status_code == 422 and "archive" in junk.json()["detail"]
    bad_report = ml.post(
        "/api/v1/models",
        files={
            "archive": ("m.tar.gz", tar_gz(make_model_folder(version="3.0.0"))),
            "report_json": ("r", b"["),
        },
        headers={"X-CSRF-Token": ml.csrf},
    )
    assert bad_report.status_code == 422 and "report.json" in bad_report.json()["detail"]


def test_upload_form_shows_errors_on_the_page(login, tenants, make_model_folder) -> None:
    ml = login("ml")
    r = ml.post(
        "/models",
        data={"csrf_token": ml.csrf},
        files={"archive": ("m.tar.gz", tar_gz(_tampered(make_model_folder())))},
    )
    assert r.status_code == 422 and "sha256" in r.text and "Upload a model" in r.text
    r = ml.post(
        "/models",
        data={"csrf_token": ml.csrf},
        files={"archive": ("m.tar.gz", tar_gz(make_model_folder("x")))},
    )
    assert r.status_code == 303 and r.headers["location"].startswith("/models/")


def test_only_ml_and_admin_upload_and_restaurants_never_see_the_registry(
    login, tenants, make_model_folder
) -> None:
    blob = tar_gz(make_model_folder())
    inspector = login("insp-north")
    assert upload(inspector, blob).status_code == 403
    assert inspector.get("/api/v1/models").status_code == 200  # inspectors may look
    rest = login("rest-a")
    assert upload(rest, blob).status_code == 403
    for path in ("/models", "/api/v1/models", "/models/1", "/api/v1/models/1"):
        assert rest.get(path).status_code == 403, path
    assert 'href="/models"' not in rest.get("/portal").text
    assert upload(login("admin"), blob).status_code == 201
    assert "Upload a model" not in inspector.get("/models").text


def _agent_online(persister, restaurant: str = "r-a", agent: str = "box-1") -> None:
    msg = AvailabilityMessage(
        restaurant=restaurant,
        agent=agent,
        status="online",
        at=utc_now(),
        model={"name": "tiny", "version": "0.9"},
    )
    assert persister.handle(topic_for(msg), encode(msg)).outcome == "stored"


def test_download_token_works_for_its_model_only_and_expires(
    login, web, tenants, make_model_folder, persister, sessions, db_config, broker, command_listener
) -> None:
    db_config.mqtt = MqttSection(port=broker.port)
    ml = login("ml")
    first = upload(ml, tar_gz(make_model_folder(version="1.0.0")), report=False).json()
    second_blob = tar_gz(make_model_folder(version="2.0.0"))
    second = upload(ml, second_blob, report=False).json()
    _agent_online(persister)
    r = ml.post(
        f"/api/v1/models/{second['id']}/rollouts",
        json={"agents": ["r-a/box-1"]},
        headers={"X-CSRF-Token": ml.csrf},
    )
    assert r.status_code == 201, r.text
    (cmd,) = command_listener.wait_for(1)
    spec = cmd.model
    assert spec.url == f"https://testserver/api/v1/models/{second['id']}/download"
    assert spec.sha256 == hashlib.sha256(second_blob).hexdigest() and spec.token

    agent = web()  # no session: the token alone
    bearer = {"Authorization": f"Bearer {spec.token}"}
    got = agent.get(f"/api/v1/models/{second['id']}/download", headers=bearer)
    assert got.status_code == 200 and got.content == second_blob
    assert agent.get(f"/api/v1/models/{first['id']}/download", headers=bearer).status_code == 403
    assert agent.get(f"/api/v1/models/{second['id']}/download").status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * 43}
    assert agent.get(f"/api/v1/models/{second['id']}/download", headers=wrong).status_code == 401
    assert login("insp-north").get(f"/api/v1/models/{second['id']}/download").status_code == 403
    assert ml.get(f"/api/v1/models/{first['id']}/download").status_code == 200
    with sessions.begin() as s:
        s.scalar(select(Rollout)).token_expires_at = now_utc() - timedelta(seconds=1)
    expired = agent.get(f"/api/v1/models/{second['id']}/download", headers=bearer)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]


class _CountedReads:
    """A store file that records the size of each read and whether it was closed."""

    def __init__(self, fh: Any) -> None:
        self.fh, self.reads, self.closed = fh, [], False

    def read(self, size: int = -1) -> bytes:
        data = self.fh.read(size)
        self.reads.append(len(data))
        return data

    def __enter__(self) -> _CountedReads:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.fh.close()
        self.closed = True


def test_download_streams_an_archive_larger_than_a_chunk(
    login, tenants, make_model_folder, persister, monkeypatch
) -> None:
    from dashboard.web.routers.models import DOWNLOAD_CHUNK_BYTES

    folder = make_model_folder(version="4.0.0")
    (folder / "padding.bin").write_bytes(os.urandom(DOWNLOAD_CHUNK_BYTES * 3 // 2))  # does not compress
    blob = tar_gz(folder)
    assert len(blob) > DOWNLOAD_CHUNK_BYTES
    ml = login("ml")
    model_id = upload(ml, blob, report=False).json()["id"]
    store, opened = persister.store, []
    real_open = store.open
    monkeypatch.setattr(store, "open", lambda key: opened.append(_CountedReads(real_open(key))) or opened[-1])
    monkeypatch.setattr(store, "get", lambda key: pytest.fail("the download read the whole archive at once"))
    got = ml.get(f"/api/v1/models/{model_id}/download")
    assert got.status_code == 200 and got.content == blob
    assert got.headers["content-length"] == str(len(blob))
    assert got.headers["content-disposition"] == 'attachment; filename="tiny-4.0.0.tar.gz"'
    (archive,) = opened
    assert len(archive.reads) >= 3 and max(archive.reads) <= DOWNLOAD_CHUNK_BYTES and archive.closed


def test_a_folder_with_its_food_classifier_is_accepted(login, tenants, make_model_folder) -> None:
    ml = login("ml")
    r = upload(ml, tar_gz(_with_classifier(make_model_folder(), b"classifier")), report=False)
    assert r.status_code == 201, r.text
