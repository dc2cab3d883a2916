"""The edge agent: wiring only. Builds the detector (the remembered model, see ``model_memory``), outbox,
MQTT link, rollback watchdog and one worker per camera from the config, connects the cameras' outputs to
the outbox, and publishes stats every ``stats_interval_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from uuid import UUID

from brightkitchen import __version__
from brightkitchen.contract import (
    ModelRef,
    ReplyMessage,
    StatsMessage,
    agent_topic,
    encode,
    topic_for,
    utc_now,
)
from edge_agent.camera import CameraWorker
from edge_agent.commands import CommandHandler
from edge_agent.config import EdgeConfig, load_edge_config
from edge_agent.detector import DetectorSlot
from edge_agent.model_memory import load_start_model, remember
from edge_agent.mqtt_link import MqttLink
from edge_agent.outbox import Outbox
from edge_agent.pipeline import CameraPipeline, Output
from edge_agent.watchdog import AutoRollback, RollbackWatchdog
from edge_agent.wire import model_ref, to_outgoing

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, cfg: EdgeConfig, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path
        m = cfg.model
        self.detectors = DetectorSlot(load_start_model(m.download_dir, m.path, m.threads))
        self.outbox = Outbox(cfg.outbox.path, cfg.outbox.max_bytes)
        self.commands = CommandHandler(
            cfg.agent.restaurant,
            cfg.agent.id,
            self.detectors,
            cfg.model.threads,
            cfg.model.download_dir,
            self.reload,
            self._reply,
            self._model_changed,
        )
        self.watchdog = RollbackWatchdog(
            self.detectors, cfg.model.rollback_errors, cfg.model.rollback_window_s, self._rolled_back
        )
        self.link = MqttLink(cfg, self.outbox, self.commands.handle, self._describe, __version__)
        self.workers = self._workers(cfg)
        self._lock = threading.Lock()

    def _workers(self, cfg: EdgeConfig) -> list[CameraWorker]:
        return [
            CameraWorker(cam, cfg, self.detectors, self._sink, self.watchdog.error) for cam in cfg.cameras
        ]

    def _describe(self) -> tuple[list[str], ModelRef | None]:
        return [c.id for c in self.cfg.cameras], model_ref(self.detectors.current)

    def _sink(self, item: Output, pipeline: CameraPipeline) -> None:
        out = to_outgoing(item, self.cfg.agent.restaurant, self.cfg.agent.id, model_ref(pipeline.detector))
        if self.outbox.put(out.msg_id, out.kind, out.topic, out.payload):
            self.link.notify()

    def _reply(self, reply: ReplyMessage, msg_id: str | None = None) -> None:
        self.outbox.put(msg_id or f"reply:{reply.command_id}", "control", topic_for(reply), encode(reply))
        self.link.notify()

    def _model_changed(self, switch_id: UUID | None) -> None:
        """A switch arms the watchdog, a rollback disarms it; either way the new model is announced."""
        if switch_id is None:
            self.watchdog.disarm()
        else:
            self.watchdog.arm(switch_id)
        self._remember()
        self.link.announce()

    def _remember(self) -> None:
        remember(self.cfg.model.download_dir, self.detectors.current.folder, self.cfg.model.path)

    def _rolled_back(self, event: AutoRollback) -> None:
        """The watchdog undid a switch: answer the switch command again, with ok=false, and announce."""
        reply = ReplyMessage(
            command_id=event.command_id,
            restaurant=self.cfg.agent.restaurant,
            agent=self.cfg.agent.id,
            at=utc_now(),
            ok=False,
            message=f"rolled back to {event.restored_model} automatically: {event.reason}"[:2000],
            model=model_ref(self.detectors.current),
        )
        self._reply(reply, f"reply:{event.command_id}:auto-rollback")
        self._remember()
        self.link.announce()

    def reload(self) -> str:
        """Re-read the config file and restart the cameras with it; the old ones keep running if it is bad."""
        if self.config_path is None:
            raise ValueError("this agent was not started from a config file")
        new = load_edge_config(self.config_path)  # ConfigError (a ValueError) leaves everything as it was
        if (new.agent, new.mqtt, new.outbox) != (self.cfg.agent, self.cfg.mqtt, self.cfg.outbox):
            raise ValueError("agent, mqtt and outbox changes need a restart; nothing reloaded")
        with self._lock:
            for worker in self.workers:
                worker.stop()
            self.cfg = new
            self.workers = self._workers(new)
            for worker in self.workers:
                worker.start()
        log.info("config reloaded from %s: %d cameras", self.config_path, len(new.cameras))
        return f"reloaded {len(new.cameras)} cameras"

    def stats(self, interval_s: float) -> StatsMessage:
        depth, size = self.outbox.depth()
        return StatsMessage(
            restaurant=self.cfg.agent.restaurant,
            agent=self.cfg.agent.id,
            at=utc_now(),
            interval_s=interval_s,
            model=model_ref(self.detectors.current),
            cameras=[w.stats() for w in self.workers],
            outbox_depth=depth,
            outbox_bytes=size,
        )

    def run(self, stop: threading.Event, until_done: bool = False, drain_s: float = 30.0) -> None:
        """Run until ``stop`` is set (or, with ``until_done``, until every camera's file has ended)."""
        self.link.start()
        for worker in self.workers:
            worker.start()
        interval = self.cfg.mqtt.stats_interval_s
        topic = agent_topic(self.cfg.agent.restaurant, self.cfg.agent.id, "stats")
        next_stats = time.monotonic() + interval
        try:
            while not stop.wait(min(0.5, max(0.0, next_stats - time.monotonic()))):
                if time.monotonic() >= next_stats:
                    self.link.publish_now(topic, encode(self.stats(interval)))
                    next_stats += interval
                if until_done and not any(w.alive for w in self.workers):
                    log.info("every camera has finished its video")
                    break
        finally:
            for worker in self.workers:
                worker.stop()
            since_stats = max(0.1, interval - (next_stats - time.monotonic()))
            final_stats = (topic, encode(self.stats(since_stats)))  # what happened since the last one
            self.link.stop(drain_s=drain_s if until_done else 2.0, last_words=final_stats)
            depth = self.outbox.depth()[0]
            if depth:
                log.info("stopping with %d messages in the outbox; they go out on the next start", depth)
            self.outbox.close()
