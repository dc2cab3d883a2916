"""Media stores: the filesystem backend and the S3 backend against moto's S3 server (real HTTP)."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import select

from brightkitchen.contract import encode
from dashboard.config import MediaSection
from dashboard.media import FilesystemStore, MediaNotFound, S3Store, open_store
from dashboard.models import Media
from dashboard.persist import Persister


def _roundtrip(store) -> None:
    store.put("r-a/e1/snapshot-1.jpg", b"abc", "image/jpeg")
    assert store.exists("r-a/e1/snapshot-1.jpg")
    assert store.get("r-a/e1/snapshot-1.jpg") == b"abc"
    store.put("r-a/e1/snapshot-1.jpg", b"abcd", "image/jpeg")
    assert store.get("r-a/e1/snapshot-1.jpg") == b"abcd"
    store.put("models/tiny/1.0.0/a.tar.gz", b"0123456789", "application/gzip")
    with store.open("models/tiny/1.0.0/a.tar.gz") as fh:  # read in pieces, as downloads are served
        assert [fh.read(4), fh.read(4), fh.read(4), fh.read(4)] == [b"0123", b"4567", b"89", b""]
    store.delete("r-a/e1/snapshot-1.jpg")
    assert not store.exists("r-a/e1/snapshot-1.jpg")
    for read in (store.get, store.open):
        with pytest.raises(MediaNotFound):
            read("r-a/e1/snapshot-1.jpg")
    for bad in ("../etc/passwd", "/abs", "a//b", "a/./b"):
        with pytest.raises(ValueError):
            store.put(bad, b"x", "image/jpeg")


def test_filesystem_store(tmp_path) -> None:
    _roundtrip(FilesystemStore(tmp_path / "media"))
    assert not list((tmp_path / "media").rglob(".tmp-*"))


def test_filesystem_store_syncs_the_file_and_the_rename_before_put_returns(tmp_path, monkeypatch) -> None:
    """The ingest acks the MQTT message once put() returns: the media must survive a power cut by then."""
    import os

    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append("rename") or real_replace(a, b))
    FilesystemStore(tmp_path / "media").put("r-a/e1/clip.mp4", b"data", "video/mp4")
    assert calls == ["fsync file", "rename", "fsync dir"]


@pytest.fixture
def moto_s3():
    """An S3 endpoint served by moto over HTTP on a free port, with a bucket 'bk-media'."""
    server_mod = pytest.importorskip("moto.server")
    import socket

    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
    boto3.client("s3", endpoint_url=url, **creds).create_bucket(Bucket="bk-media")
    yield url
    server.stop()


def test_s3_store(moto_s3) -> None:
    _roundtrip(S3Store("bk-media", "media/", moto_s3, "us-east-1", "test", "test"))


def test_ingest_into_s3(moto_s3, sessions, tenants, make_event, make_media, jpeg) -> None:
    section = MediaSection.model_validate(
        {
            "backend": "s3",
            "s3": {
                "bucket": "bk-media",
                "prefix": "m/",
                "endpoint_url": moto_s3,
                "region": "us-east-1",
                "access_key_id": "test",
                "secret_access_key": "test",
            },
        }
    )
    store = open_store(section)
    persister = Persister(sessions, store)
    ev = make_event()
    assert persister.handle("bk/v1/r-a/camera/cam-1/media", encode(make_media(ev))).outcome == "stored"
    with sessions() as s:
        key = s.scalars(select(Media.storage_key)).one()
    assert store.get(key) == jpeg


def test_s3_outage_keeps_media_until_the_store_is_back(
    moto_s3, sessions, tenants, broker, publisher, make_event, make_media, jpeg, wait_until
) -> None:
    """S3 goes away mid-stream: media stay unacknowledged (no dead letter) and are stored once it is back."""
    from brightkitchen.contract import topic_for
    from dashboard.config import MqttSection
    from dashboard.ingest import IngestWorker
    from dashboard.models import DeadLetter

    bucket = f"bk-outage-{uuid.uuid4().hex[:8]}"  # moto's state outlives one server: a bucket of our own
    store = S3Store(bucket, "", moto_s3, "us-east-1", "test", "test")
    store.client.create_bucket(Bucket=bucket)
    worker = IngestWorker(
        MqttSection(port=broker.port, client_id="ingest-s3", share_group="dash"), Persister(sessions, store)
    )
    worker.start()
    try:
        wait_until(worker.connected.is_set)
        ev = make_event()
        publisher.publish(topic_for(ev), encode(ev))
        wait_until(lambda: worker.counts["stored"] == 1)
        store.client.delete_bucket(Bucket=bucket)  # the store now refuses writes
        publisher.publish(topic_for(make_media(ev)), encode(make_media(ev)))
        time.sleep(2.0)
        with sessions() as s:
            assert s.scalars(select(Media)).all() == [] and s.scalars(select(DeadLetter)).all() == []
        store.client.create_bucket(Bucket=bucket)
        wait_until(lambda: worker.counts["stored"] == 2, timeout_s=40)
    finally:
        worker.stop()
    with sessions() as s:
        key = s.scalars(select(Media.storage_key)).one()
    assert store.get(key) == jpeg
