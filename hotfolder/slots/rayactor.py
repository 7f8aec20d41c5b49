"""The Ray actor behind a `RaySlot`: one `Engine` on one node, its events kept for polling.

It runs in a Ray worker process on whichever node Ray places it (hotfolder[ray] must be
installed there). The engine loads the editor once on a thread of its own; the bridge
(`slots.raybridge`) calls `poll` in a loop to collect the engine's events (ready,
progress, edited, outcome) while `submit`, `cancel`, `abort` and `stop` arrive on the
actor's other threads (it is created with `max_concurrency` above 1). It never sees a
folder: tickets come in as decoded pixels, outcomes leave as encoded bytes.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
from typing import Any

from hotfolder.config import Config
from hotfolder.editors import make_editor
from hotfolder.slots.base import Ticket
from hotfolder.slots.engine import Engine, Event

log = logging.getLogger(__name__)

# The actor's methods that may run at once: a long `poll`, plus submit, cancel, abort, stop.
ACTOR_CONCURRENCY = 4
# At most this many events leave in one `poll` answer (progress comes in bursts).
POLL_BATCH = 64


def node_label(info: dict[str, Any]) -> str:
    """How notes and logs name a node: `gpu-box-2 (10.0.0.12, node 3f2a9c1e)`."""
    node = str(info.get("node_id") or "")[:8]
    return f"{info.get('host')} ({info.get('node_ip')}, node {node})"


class EngineHost:
    """Made into a Ray actor by the bridge: `ray.remote(...)(EngineHost)`."""

    def __init__(self, config_json: str, device: str) -> None:
        config = Config.model_validate_json(config_json)
        self.device = device
        self.events: queue.Queue[Event] = queue.Queue()
        self.engine = Engine(
            make_editor(config, device),
            self.events.put,
            device=device,
            warm_preset=config.preset(None),
        )
        self._thread = threading.Thread(target=self._run, name="hotfolder-engine", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.engine.run()
        finally:
            self.events.put(("ended",))  # loading failed, or stopped: nothing more comes

    def where(self) -> dict[str, Any]:
        """The node, process and device this actor runs on, for status files and queue.json."""
        import ray

        context = ray.get_runtime_context()
        gpus = [str(gpu) for gpu in ray.get_gpu_ids()]
        shown = f"cuda:{','.join(gpus)}" if gpus and self.device == "cuda" else self.device
        return {
            "host": socket.gethostname(),
            "node_ip": ray.util.get_node_ip_address(),
            "node_id": context.get_node_id(),
            "actor_id": context.get_actor_id(),
            "pid": os.getpid(),
            "gpu_ids": gpus,
            "device": shown,
        }

    def submit(self, ticket: Ticket) -> None:
        self.engine.submit(ticket)

    def cancel(self, job_id: str) -> None:
        self.engine.cancel(job_id)

    def abort(self) -> None:
        self.engine.abort()

    def stop(self) -> None:
        self.engine.stop()

    def poll(self, timeout_seconds: float) -> list[Event]:
        """The events since the last poll; waits up to `timeout_seconds` for the first."""
        try:
            events = [self.events.get(timeout=timeout_seconds)]
        except queue.Empty:
            return []
        while len(events) < POLL_BATCH:
            try:
                events.append(self.events.get_nowait())
            except queue.Empty:
                break
        return events
