"""Rollouts: canary, promote, done; failures, rollbacks and aborts stop them, and the agents that had switched
are sent back to their previous model; commands go over a real Mosquitto (also with the ACL written by
``mqtt-credentials``); which agent runs what, and false positives per model."""

from __future__ import annotations

import io
import tarfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from brightkitchen.contract import (
    AvailabilityMessage,
    ReplyMessage,
    StatsMessage,
    encode,
    topic_for,
    utc_now,
)
from dashboard.config import MqttSection
from dashboard.deploy import expire_overdue_rollouts, send_switch_backs_after_commit
from dashboard.models import AgentReply, AuditLog, RolloutTarget
from dashboard.mqtt_auth import write_mosquitto_auth

pytestmark = pytest.mark.parametrize("db_config", ["sqlite"], indirect=True)  # storage is covered elsewhere
AGENTS = ["r-a/box-1", "r-a/box-2", "r-b/box-1"]


def _send(persister, msg: Any) -> None:
    assert persister.handle(topic_for(msg), encode(msg)).outcome == "stored"


def _online(persister, key: str, version: str = "0.9") -> None:
    restaurant, agent = key.split("/")
    model = {"name": "tiny", "version": version}
    _send(
        persister,
        AvailabilityMessage(restaurant=restaurant, agent=agent, status="online", at=utc_now(), model=model),
    )


def _reply(persister, cmd: Any, key: str, ok: bool = True, version: str = "1.0.0", message: str = "") -> None:
    restaurant, agent = key.split("/")
    model = {"name": "tiny", "version": version}
    _send(
        persister,
        ReplyMessage(
            command_id=cmd.command_id,
            restaurant=restaurant,
            agent=agent,
            at=utc_now(),
            ok=ok,
            message=message,
            model=model,
        ),
    )


def _stats(persister, key: str, version: str = "1.0.0", error: str | None = None) -> None:
    restaurant, agent = key.split("/")
    camera = {
        "camera": "cam-1",
        "online": True,
        "fps": 5,
        "inference_ms": 9,
        "frames_processed": 5,
        "frames_skipped": 0,
    }
    _send(
        persister,
        StatsMessage(
            restaurant=restaurant,
            agent=agent,
            at=utc_now(),
            interval_s=1,
            model={"name": "tiny", "version": version},
            cameras=[{**camera, "error": error}],
            outbox_depth=0,
            outbox_bytes=0,
        ),
    )


def _upload(ml: Any, folder: Path) -> int:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(folder, arcname=folder.name)
    r = ml.post(
        "/api/v1/models", files={"archive": ("m.tar.gz", buf.getvalue())}, headers={"X-CSRF-Token": ml.csrf}
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def registry(login, tenants, make_model_folder, persister, db_config, broker) -> dict[str, Any]:
    """The test broker for commands, three agents on model 0.9, and model tiny 1.0.0 in the registry."""
    db_config.mqtt = MqttSection(port=broker.port)
    ml = login("ml")
    model_id = _upload(ml, make_model_folder(version="1.0.0"))
    for key in AGENTS:
        _online(persister, key)
    return {"ml": ml, "model": model_id}


@pytest.fixture
def way_back(registry, make_model_folder, sessions, db_config) -> int:
    """tiny 0.9, which the agents run, in the registry too; the ingest's switch-backs wired as in
    ``brightkitchen dashboard ingest``. The id of 0.9."""
    send_switch_backs_after_commit(sessions, db_config)
    return _upload(registry["ml"], make_model_folder(version="0.9"))


def _start(ml: Any, model_id: int, agents: list[str]) -> Any:
    return ml.post(
        f"/api/v1/models/{model_id}/rollouts", json={"agents": agents}, headers={"X-CSRF-Token": ml.csrf}
    )


def _promote(ml: Any, rollout_id: int) -> Any:
    return ml.post(f"/api/v1/rollouts/{rollout_id}/promote", headers={"X-CSRF-Token": ml.csrf})


def _abort(user: Any, rollout_id: int) -> Any:
    return user.post(f"/api/v1/rollouts/{rollout_id}/abort", headers={"X-CSRF-Token": user.csrf})


def _state(ml: Any, rollout_id: int) -> tuple[str, list[str]]:
    r = ml.get(f"/api/v1/rollouts/{rollout_id}").json()
    return r["state"], [t["state"] for t in r["targets"]]


def test_canary_then_promote_then_done(registry, persister, command_listener, login) -> None:
    ml, model_id = registry["ml"], registry["model"]
    r = _start(ml, model_id, AGENTS)
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    (canary_cmd,) = command_listener.wait_for(1)
    assert canary_cmd.action == "switch_model" and canary_cmd.model.version == "1.0.0"
    assert _state(ml, rid) == ("canary", ["sent", "pending", "pending"])
    assert _promote(ml, rid).status_code == 409  # not before the canary is good

    _reply(persister, canary_cmd, "r-a/box-1")
    assert _state(ml, rid) == ("canary", ["switched", "pending", "pending"])
    _stats(persister, "r-a/box-1", error="processing failed: boom")
    assert _state(ml, rid)[0] == "canary"  # errors: not good yet
    _stats(persister, "r-a/box-1")
    assert _state(ml, rid) == ("canary_ok", ["running", "pending", "pending"])
    assert "Promote to all" in ml.get(f"/models/{model_id}").text
    inspector = login("insp-north")
    assert _promote(inspector, rid).status_code == 403 and "role" in _promote(inspector, rid).text

    assert _promote(ml, rid).status_code == 200
    cmds = command_listener.wait_for(3)
    assert {c.command_id for c in cmds[1:]} != {canary_cmd.command_id}
    assert cmds[1].model.token == cmds[2].model.token != canary_cmd.model.token  # renewed on promote
    assert _state(ml, rid) == ("rolling", ["running", "sent", "sent"])
    for cmd, key in zip(cmds[1:], AGENTS[1:], strict=True):
        _reply(persister, cmd, key)
        _stats(persister, key)
    assert _state(ml, rid) == ("done", ["running"] * 3)
    model = ml.get(f"/api/v1/models/{model_id}").json()
    assert model["agents"] == ["r-a/box-1", "r-a/box-2", "r-b/box-1"]
    health = {
        f"{a['restaurant']}/{a['agent']}": a["model_version"]
        for a in ml.get("/api/v1/health").json()["agents"]
    }
    assert health == dict.fromkeys(AGENTS, "1.0.0")


def test_a_failed_canary_stops_the_rollout(registry, persister, command_listener) -> None:
    ml, model_id = registry["ml"], registry["model"]
    rid = _start(ml, model_id, AGENTS).json()["id"]
    (cmd,) = command_listener.wait_for(1)
    _reply(persister, cmd, "r-a/box-1", ok=False, version="0.9", message="sha256 of the download is 00…")
    state, targets = _state(ml, rid)
    assert (state, targets) == ("failed", ["failed", "skipped", "skipped"])
    assert "sha256" in ml.get(f"/api/v1/rollouts/{rid}").json()["message"]
    assert _promote(ml, rid).status_code == 409
    assert len(command_listener.commands) == 1  # nobody else was sent anything
    assert _start(ml, model_id, ["r-a/box-1"]).status_code == 201  # a failed rollout does not block a new one


def test_the_agents_own_rollback_fails_the_rollout(registry, persister, command_listener) -> None:
    ml, model_id = registry["ml"], registry["model"]
    rid = _start(ml, model_id, AGENTS[:2]).json()["id"]
    (cmd,) = command_listener.wait_for(1)
    _reply(persister, cmd, "r-a/box-1")
    _stats(persister, "r-a/box-1")
    assert _state(ml, rid)[0] == "canary_ok"
    _reply(
        persister, cmd, "r-a/box-1", ok=False, version="0.9", message="rolled back to tiny-0.9 automatically"
    )
    assert _state(ml, rid) == ("failed", ["rolled_back", "skipped"])
    assert "rolled back" in ml.get(f"/api/v1/rollouts/{rid}").json()["message"]
    assert _promote(ml, rid).status_code == 409


def test_an_agent_reporting_the_old_model_after_switching_fails_the_rollout(
    registry, persister, command_listener
) -> None:
    ml, model_id = registry["ml"], registry["model"]
    rid = _start(ml, model_id, ["r-b/box-1"]).json()["id"]
    (cmd,) = command_listener.wait_for(1)
    _stats(persister, "r-b/box-1", version="0.9")  # before it switched: no news
    assert _state(ml, rid) == ("canary", ["sent"])
    _reply(persister, cmd, "r-b/box-1")
    _online(persister, "r-b/box-1", version="0.9")  # restarted on the old model
    assert _state(ml, rid) == ("failed", ["rolled_back"])


def test_busy_agents_and_unknown_agents_are_refused(registry, command_listener) -> None:
    ml, model_id = registry["ml"], registry["model"]
    assert _start(ml, model_id, ["r-a/box-1"]).status_code == 201
    busy = _start(ml, model_id, ["r-a/box-2", "r-a/box-1"])
    assert busy.status_code == 409 and "r-a/box-1" in busy.json()["detail"]
    assert _start(ml, model_id, ["r-z/box-9"]).status_code == 422
    assert _start(ml, model_id, ["r-a/box-2", "r-a/box-2"]).status_code == 409
    assert _start(ml, 999, ["r-a/box-2"]).status_code == 404


def test_unreachable_broker_fails_the_rollout(login, tenants, registry, db_config) -> None:
    ml = registry["ml"]
    broker_port = db_config.mqtt.port
    db_config.mqtt = MqttSection(port=1)  # nothing listens there
    r = _start(ml, registry["model"], ["r-a/box-1"])
    assert r.status_code == 502 and "cannot reach" in r.json()["detail"]
    rollout = ml.get(f"/api/v1/models/{registry['model']}").json()["rollouts"][0]
    assert rollout["state"] == "failed" and rollout["targets"][0]["state"] == "failed"
    db_config.mqtt = MqttSection(port=broker_port)


def test_commands_go_out_with_the_dashboards_broker_login_and_acl(
    login, tenants, make_model_folder, persister, db_config, mosquitto_with, tmp_path: Path
) -> None:
    auth = write_mosquitto_auth(tmp_path / "mqtt", ["r-a", "r-b"])
    broker = mosquitto_with(
        f"allow_anonymous false\npassword_file {auth.password_file}\nacl_file {auth.acl_file}\n"
    )
    password = (auth.credentials_dir / "dashboard.txt").read_text().strip()
    db_config.mqtt = MqttSection(port=broker.port, username="dashboard", password=password)
    ml = login("ml")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(make_model_folder(version="1.0.0"), arcname="m")
    model_id = ml.post(
        "/api/v1/models", files={"archive": ("m.tar.gz", buf.getvalue())}, headers={"X-CSRF-Token": ml.csrf}
    ).json()["id"]
    _online(persister, "r-a/box-1")
    assert _start(ml, model_id, ["r-a/box-1"]).status_code == 201
    db_config.mqtt = MqttSection(port=broker.port, username="dashboard", password="wrong")
    _online(persister, "r-b/box-1")
    refused = _start(ml, model_id, ["r-b/box-1"])
    assert refused.status_code == 502 and "refused the dashboard's login" in refused.json()["detail"]


def test_false_positive_rate_per_model_version(login, tenants, persister, make_event) -> None:
    inspector = login("insp-north")
    for i, verdict in enumerate(["confirmed", "false_positive", "false_positive", "confirmed"]):
        version = "1.0.0" if i < 3 else "2.0.0"
        ev = make_event(restaurant="r-a", event_id=uuid.uuid4(), model={"name": "tiny", "version": version})
        _send(persister, ev)
        body = {"verdict": verdict, "reason": "" if verdict == "confirmed" else "a shadow"}
        r = inspector.post(
            f"/api/v1/alerts/{ev.event_id}/review", json=body, headers={"X-CSRF-Token": inspector.csrf}
        )
        assert r.status_code == 200, r.text
    rates = {
        r["key"]: (r["reviewed"], r["false_positive"])
        for r in login("ml").get("/api/v1/stats").json()["fp_rate_by_model"]
    }
    assert rates == {"tiny 1.0.0": (3, 2), "tiny 2.0.0": (1, 0)}
    assert "False-positive rate per model version" in inspector.get("/stats").text


def test_the_pages_start_and_promote_a_rollout(registry, persister, command_listener) -> None:
    ml, model_id = registry["ml"], registry["model"]
    page = ml.get(f"/models/{model_id}").text
    assert 'value="r-b/box-1"' in page and "Start rollout" in page
    form = {"csrf_token": ml.csrf, "canary": "r-b/box-1", "agents": ["r-a/box-1", "r-b/box-1"]}
    r = ml.post(f"/models/{model_id}/rollouts", data=form)
    assert r.status_code == 303 and r.headers["location"] == f"/models/{model_id}"
    (cmd,) = command_listener.wait_for(1)
    rollout = ml.get(f"/api/v1/models/{model_id}").json()["rollouts"][0]
    assert [(t["restaurant"], t["agent"], t["canary"]) for t in rollout["targets"]] == [
        ("r-b", "box-1", True),
        ("r-a", "box-1", False),
    ]
    _reply(persister, cmd, "r-b/box-1")
    _stats(persister, "r-b/box-1")
    assert ml.post(f"/rollouts/{rollout['id']}/promote", data={"csrf_token": ml.csrf}).status_code == 303
    assert command_listener.wait_for(2)[1].model.version == "1.0.0"
    assert "rolling" in ml.get(f"/models/{model_id}").text


def test_abort_during_the_canary_sends_the_canary_back(
    registry, way_back, persister, command_listener, sessions, web
) -> None:
    ml, model_id = registry["ml"], registry["model"]
    rid = _start(ml, model_id, AGENTS).json()["id"]
    (cmd,) = command_listener.wait_for(1)
    _reply(persister, cmd, "r-a/box-1")
    assert _state(ml, rid) == ("canary", ["switched", "pending", "pending"])
    page = ml.get(f"/models/{model_id}").text
    assert f'action="/rollouts/{rid}/abort"' in page and "Abort and switch back" in page
    assert "(before: tiny 0.9)" in page
    assert ml.post(f"/rollouts/{rid}/abort", data={}).status_code == 403  # no CSRF token
    r = ml.post(f"/rollouts/{rid}/abort", data={"csrf_token": ml.csrf})
    assert r.status_code == 303 and r.headers["location"] == f"/models/{model_id}"

    _, back = command_listener.wait_for(2)
    assert command_listener.topics[1] == "bk/v1/r-a/agent/box-1/command"
    assert back.action == "switch_model" and back.command_id != cmd.command_id
    assert (back.model.name, back.model.version) == ("tiny", "0.9")
    assert back.model.url == f"https://testserver/api/v1/models/{way_back}/download"
    rollout = ml.get(f"/api/v1/rollouts/{rid}").json()
    assert (rollout["state"], [t["state"] for t in rollout["targets"]]) == (
        "aborted",
        ["reverting", "skipped", "skipped"],
    )
    assert "1 agent(s) that had switched are sent back" in rollout["message"]
    assert rollout["targets"][0]["previous_model"] == "tiny 0.9"
    agent = web()  # the switch-back's token fetches the previous model only; the rollout's has expired
    bearer = {"Authorization": f"Bearer {back.model.token}"}
    assert agent.get(f"/api/v1/models/{way_back}/download", headers=bearer).status_code == 200
    assert agent.get(f"/api/v1/models/{model_id}/download", headers=bearer).status_code == 403
    stale = {"Authorization": f"Bearer {cmd.model.token}"}
    assert agent.get(f"/api/v1/models/{model_id}/download", headers=stale).status_code == 401

    _reply(persister, back, "r-a/box-1", version="0.9", message="switched to tiny 0.9")
    assert _state(ml, rid) == ("aborted", ["reverted", "skipped", "skipped"])
    _reply(persister, cmd, "r-a/box-1", ok=False, version="0.9", message="rolled back automatically")
    assert _state(ml, rid)[1][0] == "reverted"  # a late answer to the first command changes nothing
    with sessions() as s:
        assert s.scalar(select(AgentReply).where(AgentReply.command_id == back.command_id)).ok
        (entry,) = s.scalars(select(AuditLog).where(AuditLog.action == "abort_rollout"))
        assert (entry.target_id, entry.detail) == (str(rid), {"switch_back": 1})
    assert _promote(ml, rid).status_code == 409
    assert "Abort and switch back" not in ml.get(f"/models/{model_id}").text
    assert _start(ml, model_id, ["r-a/box-1"]).status_code == 201  # an aborted rollout blocks nothing


def test_a_failure_after_promote_sends_back_the_agents_that_switched(
    registry, way_back, persister, command_listener
) -> None:
    ml, model_id = registry["ml"], registry["model"]
    rid = _start(ml, model_id, AGENTS).json()["id"]
    (canary_cmd,) = command_listener.wait_for(1)
    _reply(persister, canary_cmd, "r-a/box-1")
    _stats(persister, "r-a/box-1")
    assert _promote(ml, rid).status_code == 200
    cmds = command_listener.wait_for(3)
    _reply(persister, cmds[1], "r-a/box-2")
    assert len(command_listener.commands) == 3
    _reply(persister, cmds[2], "r-b/box-1", ok=False, version="0.9", message="model.onnx does not load")

    backs = command_listener.wait_for(5)[3:]
    assert sorted(command_listener.topics[3:]) == [
        "bk/v1/r-a/agent/box-1/command",
        "bk/v1/r-a/agent/box-2/command",
    ]
    assert {(c.action, c.model.version) for c in backs} == {("switch_model", "0.9")}
    rollout = ml.get(f"/api/v1/rollouts/{rid}").json()
    assert (rollout["state"], [t["state"] for t in rollout["targets"]]) == (
        "failed",
        ["reverting", "reverting", "failed"],
    )
    assert "does not load" in rollout["message"] and "2 agent(s) that had switched" in rollout["message"]
    by_agent = dict(zip(command_listener.topics[3:], backs, strict=True))
    _reply(persister, by_agent["bk/v1/r-a/agent/box-1/command"], "r-a/box-1", version="0.9")
    _reply(
        persister,
        by_agent["bk/v1/r-a/agent/box-2/command"],
        "r-a/box-2",
        ok=False,
        message="cannot download: 404",
    )
    assert _state(ml, rid) == ("failed", ["reverted", "revert_failed", "failed"])
    assert "cannot download" in ml.get(f"/api/v1/rollouts/{rid}").json()["targets"][1]["message"]


def test_an_agent_that_switches_after_the_abort_is_sent_back(
    registry, way_back, persister, command_listener
) -> None:
    ml, model_id = registry["ml"], registry["model"]
    rid = _start(ml, model_id, AGENTS[:2]).json()["id"]
    (canary_cmd,) = command_listener.wait_for(1)
    _reply(persister, canary_cmd, "r-a/box-1")
    _stats(persister, "r-a/box-1")
    assert _promote(ml, rid).status_code == 200
    late = command_listener.wait_for(2)[1]
    assert _abort(ml, rid).status_code == 200  # r-a/box-2 has the command but has not answered yet
    command_listener.wait_for(3)
    assert _state(ml, rid) == ("aborted", ["reverting", "sent"])

    _reply(persister, late, "r-a/box-2")  # it had the model already: it switches all the same
    back = command_listener.wait_for(4)[3]
    assert command_listener.topics[3] == "bk/v1/r-a/agent/box-2/command" and back.model.version == "0.9"
    assert _state(ml, rid) == ("aborted", ["reverting", "reverting"])


def test_abort_is_refused_for_a_finished_rollout_and_for_other_roles(
    registry, persister, command_listener, login
) -> None:
    ml, model_id = registry["ml"], registry["model"]
    rid = _start(ml, model_id, ["r-b/box-1"]).json()["id"]
    (cmd,) = command_listener.wait_for(1)
    for user in ("rest-a", "insp-north"):
        refused = _abort(login(user), rid)
        assert refused.status_code == 403 and "role" in refused.text
    assert _state(ml, rid) == ("canary", ["sent"])
    _reply(persister, cmd, "r-b/box-1")
    _stats(persister, "r-b/box-1")
    assert _state(ml, rid) == ("done", ["running"])
    done = _abort(ml, rid)
    assert done.status_code == 409 and "only an unfinished rollout" in done.json()["detail"]
    assert _abort(ml, 999).status_code == 404
    assert _state(ml, rid) == ("done", ["running"]) and len(command_listener.commands) == 1


def test_without_the_previous_model_in_the_registry_the_agent_is_not_sent_back(
    registry, persister, command_listener
) -> None:
    ml, model_id = registry["ml"], registry["model"]
    rid = _start(ml, model_id, ["r-a/box-1"]).json()["id"]
    (cmd,) = command_listener.wait_for(1)
    _reply(persister, cmd, "r-a/box-1")
    assert _abort(ml, rid).status_code == 200
    rollout = ml.get(f"/api/v1/rollouts/{rid}").json()
    assert (rollout["state"], rollout["targets"][0]["state"]) == ("aborted", "revert_failed")
    assert "tiny 0.9 is not in the registry" in rollout["targets"][0]["message"]
    assert len(command_listener.commands) == 1


def _silent_for(sessions, rid: int, minutes: float) -> None:
    """Move a rollout's targets' clocks back, as if its agents had said nothing for ``minutes``."""
    with sessions() as s:
        for target in s.scalars(select(RolloutTarget).where(RolloutTarget.rollout_id == rid)):
            past = timedelta(minutes=minutes)
            target.sent_at = target.sent_at and target.sent_at - past
            target.updated_at -= past
        s.commit()


def test_a_canary_that_never_answers_fails_the_rollout(
    registry, persister, command_listener, sessions, db_config
) -> None:
    ml, model_id = registry["ml"], registry["model"]
    rid = _start(ml, model_id, AGENTS).json()["id"]
    command_listener.wait_for(1)
    _silent_for(sessions, rid, 29)
    assert expire_overdue_rollouts(sessions, db_config) == 0  # the timeout is 30 min
    _silent_for(sessions, rid, 2)
    assert expire_overdue_rollouts(sessions, db_config) == 1
    assert _state(ml, rid) == ("failed", ["failed", "skipped", "skipped"])
    rollout = ml.get(f"/api/v1/rollouts/{rid}").json()
    assert "r-a/box-1: no answer within 30 min to switch_model" in rollout["message"]
    assert expire_overdue_rollouts(sessions, db_config) == 0
    assert len(command_listener.commands) == 1  # nobody was sent anything else
    assert _start(ml, model_id, ["r-a/box-1"]).status_code == 201


def test_a_canary_that_switched_but_never_runs_cleanly_is_sent_back_and_a_silent_one_given_up(
    registry, way_back, persister, command_listener, sessions, db_config
) -> None:
    ml, model_id = registry["ml"], registry["model"]
    rid = _start(ml, model_id, AGENTS[:2]).json()["id"]
    (cmd,) = command_listener.wait_for(1)
    _reply(persister, cmd, "r-a/box-1")
    _stats(persister, "r-a/box-1", error="model output has the wrong shape")
    assert _state(ml, rid) == ("canary", ["switched", "pending"])
    _silent_for(sessions, rid, 31)
    assert expire_overdue_rollouts(sessions, db_config) == 1
    _, back = command_listener.wait_for(2)
    assert (back.model.name, back.model.version) == ("tiny", "0.9")
    assert _state(ml, rid) == ("failed", ["reverting", "skipped"])
    assert (
        "not running without camera errors after 30 min"
        in ml.get(f"/api/v1/rollouts/{rid}").json()["message"]
    )
    _silent_for(sessions, rid, 31)  # the switch-back is not answered either
    assert expire_overdue_rollouts(sessions, db_config) == 1
    (target, _) = ml.get(f"/api/v1/rollouts/{rid}").json()["targets"]
    assert (target["state"], target["message"]) == ("revert_failed", "switch back: no answer within 30 min")
