"""Slots whose editors are Ray actors (`executor: ray`), on this machine or on others.

Each `RaySlot` is one actor that loads the editor once and keeps it. The service does not
import Ray: one `RayExecutor` per service starts `python -m hotfolder.slots.raybridge`,
the Ray driver, and talks to it over a socket pair (pickled tuples, as with a process
slot). The bridge keeps the actors (slots.raykeeper); only the service touches the folders.

What can go wrong, and what it costs:

- an actor dies (its process killed, its node lost, a hung editor killed): its jobs are
  `lost` (attempts + 1, `crashed` past max_attempts) and the bridge starts another actor;
- an actor cannot load the editor: its slot's note names the node; the others go on;
- the cluster goes away: the bridge exits, the jobs in flight go back to the queue
  without losing an attempt, queue.json's `notes` says the executor is unreachable, and a
  new bridge joins the cluster once its head answers again;
- the service dies: the bridge dies with it, and Ray ends the actors it owned.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from hotfolder.config import Config
from hotfolder.slots.base import SlotCore, SlotListener, Ticket
from hotfolder.slots.process import describe_exit, spawn
from hotfolder.slots.rayactor import node_label
from hotfolder.slots.raybridge import reachable

log = logging.getLogger(__name__)

# While the cluster's head does not answer, look again this often.
PROBE_SECONDS = 2.0
# A bridge that ends without having joined (no address known to probe) is started again
# after these pauses.
RESTART_BACKOFF_SECONDS = (2.0, 5.0, 10.0, 30.0)
# After the last slot is told to stop, the bridge has this long to end its actors and exit.
EXIT_GRACE_SECONDS = 30.0


class RaySlot:
    def __init__(self, name: str, executor: RayExecutor, listener: SlotListener) -> None:
        self.name = name
        self.device = "ray"  # until Ray places the actor: then "host/device"
        self.executor = executor
        self.core = SlotCore(self, listener)
        self.where: dict[str, Any] = {}
        self.restarts = 0
        self.stopping = False
        self.stopped = threading.Event()
        self.waiting: str | None = None  # Ray's "no room" for this slot's actor

    # --- the Slot interface ---

    def start(self) -> None:
        self.executor.start()

    def ready(self) -> bool:
        return not self.stopping and self.core.ready()

    def submit(self, ticket: Ticket) -> None:
        self.core.submitted(ticket.job_id)
        self.executor.send(("ticket", self.name, ticket))

    def cancel(self, job_id: str) -> None:
        self.executor.send(("cancel", self.name, job_id))

    def abort(self) -> None:
        self.executor.send(("abort", self.name))

    def kill(self, why: str) -> None:
        log.error("slot %s: %s; killing its Ray actor", self.name, why)
        self.executor.send(("kill", self.name, why))

    def stop(self) -> None:
        self.stopping = True
        self.executor.stop_slot(self)

    def join(self, timeout: float | None = None) -> None:
        self.stopped.wait(timeout)
        self.executor.join(timeout)

    def info(self) -> dict[str, Any]:
        where = self.where
        return {
            "kind": "ray",
            "host": where.get("host"),
            "node_ip": where.get("node_ip"),
            "node_id": where.get("node_id"),
            "actor_id": where.get("actor_id"),
            "pid": where.get("pid"),
            "restarts": self.restarts,
            "cluster": self.executor.gcs_address,
        }

    # --- from the executor's reading thread ---

    def placed(self, where: dict[str, Any]) -> None:
        self.where = where
        self.device = f"{where.get('host')}/{where.get('device')}"
        if self.waiting is not None and self.core.note == self.waiting:
            self.core.failed(f"loading the editor on {node_label(where)}")
        self.waiting = None

    def no_room(self, note: str) -> None:
        self.waiting = note
        self.core.failed(note)

    def lost(self, why: str) -> None:
        self.restarts += 1
        self.core.lost(why)
        self.core.failed(f"restarting after: {why}")

    def cut_off(self, why: str) -> None:
        """The bridge is gone: jobs back to the queue (no attempt lost), wait for the cluster."""
        self.core.returned(why)
        if not self.stopping:
            self.where = {}
            self.core.failed(f"waiting for the Ray cluster ({why})")


class RayExecutor:
    """The service's end of the Ray bridge, shared by every RaySlot of the service."""

    def __init__(self, config: Config, note: Callable[[str | None], object]) -> None:
        self.config = config
        self.note = note  # queue.json `notes["executor"]`: why dispatch waits, or None
        self.slots: dict[str, RaySlot] = {}
        address = config.ray.address
        # A cluster to join is probed before a bridge starts; a private Ray starts with it.
        self.joins = address is not None
        self.gcs_address: str | None = address if address not in (None, "auto") else None
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._send_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._done = threading.Event()  # every slot stopped
        self._unreachable: str | None = None
        self._waiting: dict[str, str] = {}  # slots Ray has found no room for yet

    def add(self, slot: RaySlot) -> None:
        self.slots[slot.name] = slot

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._supervise, name="hotfolder-ray")
                self._thread.start()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            conn = self._conn
            if conn is not None:
                # A bridge that is gone is noticed by the reader, which returns the jobs.
                with contextlib.suppress(OSError):
                    conn.send(message)
                return
        if message[0] == "ticket":
            # No bridge: the ticket goes straight back (the slot was ready a moment ago).
            self.slots[message[1]].cut_off("the Ray bridge was restarting")

    def stop_slot(self, slot: RaySlot) -> None:
        with self._send_lock:
            if self._conn is None:
                slot.stopped.set()  # no bridge, no actor to stop
            else:
                with contextlib.suppress(OSError):
                    self._conn.send(("stop", slot.name))
        if all(s.stopping for s in self.slots.values()):
            self._done.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None and self._done.is_set():
            self._thread.join(timeout)

    # --- the supervising thread ---

    def _supervise(self) -> None:
        failures = 0
        while not self._done.is_set():
            if self.joins and self.gcs_address is not None and not reachable(self.gcs_address):
                self._away(f"no Ray cluster answers at {self.gcs_address}")
                self._done.wait(PROBE_SECONDS)
                continue
            try:
                proc, conn = self._spawn()
            except OSError as e:
                self._away(f"cannot start the Ray bridge: {e}")
                self._done.wait(RESTART_BACKOFF_SECONDS[-1])
                continue
            joined = self._read(conn)
            with self._send_lock:
                self._conn = None
            conn.close()
            code = self._wait_exit(proc)
            why = self._unreachable or f"the Ray bridge ended: {describe_exit(code)}"
            for slot in self.slots.values():
                slot.cut_off(why)
                if slot.stopping:
                    slot.stopped.set()
            if self._done.is_set():
                break
            self._away(why)
            failures = 0 if joined else failures + 1
            if failures and not (self.joins and self.gcs_address is not None):
                delay = RESTART_BACKOFF_SECONDS[min(failures, len(RESTART_BACKOFF_SECONDS)) - 1]
                self._done.wait(delay)
        self.note(None)

    def _away(self, why: str) -> None:
        text = f"{why}; jobs stay queued until the Ray cluster is back"
        if self._unreachable != why:
            log.error("executor: %s", text)
        self._unreachable = why
        self.note(text)
        for slot in self.slots.values():
            if not slot.stopping and slot.core.note != f"waiting for the Ray cluster ({why})":
                slot.core.failed(f"waiting for the Ray cluster ({why})")

    def _spawn(self) -> tuple[subprocess.Popen[bytes], Connection]:
        proc, conn = spawn("hotfolder.slots.raybridge")
        self._proc = proc
        with self._send_lock:
            # Under the lock that `stop_slot` takes: a slot stopped from now on is told so.
            names = [name for name, slot in self.slots.items() if not slot.stopping]
            conn.send(("config", self.config.model_dump_json(), names))
            self._conn = conn
        log.info("started the Ray bridge (process %d)", proc.pid)
        return proc, conn

    def _wait_exit(self, proc: subprocess.Popen[bytes]) -> int | None:
        try:
            return proc.wait(timeout=EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()

    def _read(self, conn: Connection) -> bool:
        """Relay the bridge's messages until it ends; True if it joined the cluster."""
        joined = False
        while True:
            if self._done.is_set() and not conn.poll(EXIT_GRACE_SECONDS):
                log.error("executor: the Ray bridge did not stop its actors in time")
                return joined
            try:
                message = conn.recv()
            except (EOFError, OSError):
                return joined
            kind = message[0]
            if kind == "connected":
                joined = True
                self.gcs_address, self._unreachable = message[1], None
                self._show()
                log.info("executor: joined the Ray cluster at %s", message[1])
            elif kind == "unreachable":
                self._unreachable = message[1]
                self.gcs_address = message[2] or self.gcs_address
            else:
                self._relay(kind, message)

    def _relay(self, kind: str, message: tuple[Any, ...]) -> None:
        slot = self.slots.get(message[1])
        if slot is None:
            return
        if kind == "event":
            slot.core.handle(message[2])
        elif kind == "placed":
            slot.placed(message[2])
            self._waiting.pop(slot.name, None)
            self._show()
        elif kind == "waiting":
            slot.no_room(message[2])
            self._waiting[slot.name] = message[2]
            self._show()
        elif kind == "lost":
            slot.lost(message[2])
        elif kind == "stopped":
            slot.stopped.set()

    def _show(self) -> None:
        """queue.json's executor note: the cluster away, or no room on it for some worker."""
        if self._unreachable is not None:
            return
        self.note(next(iter(self._waiting.values()), None))


def make_ray_slots(
    config: Config, listener: SlotListener, note: Callable[[str | None], object]
) -> list[RaySlot]:
    """`ray.workers` slots named ray#1, ray#2, ... sharing one executor (one bridge)."""
    executor = RayExecutor(config, note)
    slots = []
    for index in range(1, config.ray.workers + 1):
        slot = RaySlot(f"ray#{index}", executor, listener)
        executor.add(slot)
        slots.append(slot)
    return slots
