"""Model switches on the edge: the rollback watchdog, and the agent through a real Mosquitto switching to a
downloaded model, refusing a bad hash, and rolling back by itself when the new model fails on frames."""

from __future__ import annotations

import hashlib
import http.server
import tarfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from brightkitchen.contract import CommandMessage, ModelDownload, agent_topic, encode, utc_now
from edge_agent.agent import Agent
from edge_agent.config import EdgeConfig
from edge_agent.detector import Detector, DetectorSlot
from edge_agent.evidence import encode_mp4
from edge_agent.model_memory import load_start_model, remember
from edge_agent.watchdog import AutoRollback, RollbackWatchdog

from .conftest import Broker, Collector, wait_until
from .test_evidence import _image


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _slot(make_model_folder: Callable[..., Path]) -> DetectorSlot:
    slot = DetectorSlot(Detector.load(make_model_folder(version="1.0.0"), threads=1))
    slot.switch(make_model_folder(version="2.0.0", broken=True), threads=1)
    return slot


def test_watchdog_rolls_back_after_n_errors_within_the_window(make_model_folder) -> None:
    slot, clock, seen = _slot(make_model_folder), Clock(), []
    dog = RollbackWatchdog(slot, max_errors=3, window_s=60, on_rollback=seen.append, clock=clock)
    switch_id = uuid.uuid4()
    dog.arm(switch_id)
    dog.error("boom 1")
    clock.t += 10
    dog.error("boom 2")
    assert not seen and slot.current.card.version == "2.0.0"
    dog.error("boom 3")
    assert slot.current.card.version == "1.0.0"
    (event,) = seen
    assert isinstance(event, AutoRollback) and event.command_id == switch_id
    assert (event.failed_model, event.restored_model) == ("tiny-2.0.0", "tiny-1.0.0")
    assert "3 processing errors" in event.reason and "boom 3" in event.reason
    dog.error("after the rollback")  # disarmed: nothing more happens
    assert len(seen) == 1


def test_watchdog_ignores_errors_outside_the_window_or_unarmed(make_model_folder) -> None:
    slot, clock, seen = _slot(make_model_folder), Clock(), []
    dog = RollbackWatchdog(slot, max_errors=2, window_s=30, on_rollback=seen.append, clock=clock)
    dog.error("no switch yet")
    dog.error("no switch yet")
    dog.arm(uuid.uuid4())
    dog.error("one")
    clock.t += 31
    dog.error("too late")
    dog.error("too late")
    dog.arm(uuid.uuid4())
    dog.disarm()  # a manual rollback
    dog.error("x")
    dog.error("y")
    assert not seen and slot.current.card.version == "2.0.0"


@pytest.fixture
def model_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A plain HTTP file server for model archives (the dashboard's role in these edge-only tests)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def _archive(folder: Path, out: Path) -> str:
    with tarfile.open(out, "w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    return hashlib.sha256(out.read_bytes()).hexdigest()


def _switch(collector: Collector, url: str, sha256: str, version: str) -> CommandMessage:
    cmd = CommandMessage(
        command_id=uuid.uuid4(),
        issued_at=utc_now(),
        action="switch_model",
        model=ModelDownload(name="tiny", version=version, url=url, sha256=sha256),
    )
    collector.client.publish(agent_topic("r-a", "box-1", "command"), encode(cmd), qos=1).wait_for_publish(5)
    return cmd


def _replies(collector: Collector, cmd: CommandMessage) -> list:
    return [r for r in collector.of("reply") if r.command_id == cmd.command_id]


def _announced(collector: Collector, version: str) -> bool:
    return any(
        a.status == "online" and a.model and a.model.version == version for a in collector.of("availability")
    )


def test_agent_switches_refuses_a_bad_hash_and_rolls_back_a_failing_model(
    broker: Broker, collector: Collector, model_server: tuple[str, Path], make_model_folder, tmp_path: Path
) -> None:
    base_url, served = model_server
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(encode_mp4([_image(n / 10) for n in range(20)], fps=10))
    cfg = EdgeConfig.model_validate(
        {
            "agent": {"id": "box-1", "restaurant": "r-a"},
            "mqtt": broker.edge_mqtt(),
            "model": {
                "path": str(make_model_folder(version="1.0.0")),
                "threads": 1,
                "download_dir": str(tmp_path / "downloads"),
                "rollback_errors": 3,
                "rollback_window_s": 60,
            },
            "outbox": {"path": str(tmp_path / "outbox.sqlite")},
            "motion": {"enabled": False},
            "cameras": [{"id": "cam1", "source": str(clip), "fps": 5, "loop": True, "rules": []}],
        }
    )
    good = _archive(make_model_folder(version="2.0.0"), served / "good.tar.gz")
    broken = _archive(make_model_folder(version="3.0.0", broken=True), served / "broken.tar.gz")
    agent, stop = Agent(cfg), threading.Event()
    thread = threading.Thread(target=agent.run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_until(lambda: _announced(collector, "1.0.0"), what="online with 1.0.0")
        wait_until(lambda: agent.link.connected.is_set() and collector.of("stats"), what="running")

        bad = _switch(collector, f"{base_url}/good.tar.gz", "0" * 64, "2.0.0")
        (reply,) = wait_until(lambda: _replies(collector, bad), what="reply to the bad hash")
        assert not reply.ok and "sha256 of the download" in reply.message
        assert reply.model.version == "1.0.0" and agent.detectors.current.card.version == "1.0.0"

        ok = _switch(collector, f"{base_url}/good.tar.gz", good, "2.0.0")
        (reply,) = wait_until(lambda: _replies(collector, ok), what="reply to the switch")
        assert reply.ok and reply.model.version == "2.0.0", reply.message
        wait_until(lambda: _announced(collector, "2.0.0"), what="availability with 2.0.0")
        wait_until(
            lambda: any(s.model.version == "2.0.0" for s in collector.of("stats")), what="stats with 2.0.0"
        )

        failing = _switch(collector, f"{base_url}/broken.tar.gz", broken, "3.0.0")
        first, second = wait_until(
            lambda: len(_replies(collector, failing)) == 2 and _replies(collector, failing),
            what="the switch reply and the rollback reply",
        )
        assert first.ok and first.model.version == "3.0.0"
        assert not second.ok and "rolled back to tiny-2.0.0 automatically" in second.message
        assert "3 processing errors" in second.message and second.model.version == "2.0.0"
        assert agent.detectors.current.card.version == "2.0.0"
        wait_until(
            lambda: collector.of("availability")[-1].model.version == "2.0.0", what="announced 2.0.0 again"
        )
    finally:
        stop.set()
        thread.join(30)
    assert Agent(cfg).detectors.current.card.version == "2.0.0"  # a restart keeps the switched model


def test_the_model_in_use_is_remembered_unless_the_config_changed(make_model_folder, tmp_path: Path) -> None:
    configured, switched = make_model_folder(version="1.0.0"), make_model_folder(version="2.0.0")
    memory = tmp_path / "downloads"
    assert load_start_model(memory, configured, 1).card.version == "1.0.0"  # nothing remembered yet
    remember(memory, switched, configured)
    assert load_start_model(memory, configured, 1).card.version == "2.0.0"
    other = make_model_folder(version="3.0.0")
    assert load_start_model(memory, other, 1).card.version == "3.0.0"  # the operator edited model.path
    (switched / "model.onnx").write_bytes(b"gone bad")
    assert load_start_model(memory, configured, 1).card.version == "1.0.0"  # falls back, never fails
