"""A slot in a process of its own: the editor loads once there and keeps its device.

A crash, a segfault, a CUDA error or a hang (the service kills it) costs the jobs in it
one attempt and the slot a restart; the service and the other slots go on. The child
never outlives the service: it dies with it (PR_SET_PDEATHSIG) and exits when its
socket closes. Messages are pickled tuples over a socket pair (`slots.child` has the
other end); only the service touches the folders.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from hotfolder.config import Config
from hotfolder.slots.base import SlotCore, SlotListener, Ticket

log = logging.getLogger(__name__)

# After a child that never became ready, wait this long before the next try (then longer).
RESTART_BACKOFF_SECONDS = (2.0, 10.0, 30.0, 120.0, 300.0)


def spawn(module: str, *args: str) -> tuple[subprocess.Popen[bytes], Connection]:
    """`python -m MODULE FD PARENT_PID ARGS...`: a child of this service on one end of a
    socket pair (FD), whose other end comes back as a Connection."""
    ours, theirs = socket.socketpair()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, str(theirs.fileno()), str(os.getpid()), *args],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
    except OSError:
        ours.close()
        raise
    finally:
        theirs.close()
    return proc, Connection(ours.detach())


def describe_exit(code: int | None) -> str:
    if code is None:
        return "its process is gone"
    if code < 0:
        try:
            return f"its process was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"its process was killed by signal {-code}"
    return f"its process exited with status {code}"


class ProcessSlot:
    def __init__(self, name: str, device: str, config: Config, listener: SlotListener) -> None:
        self.name = name
        self.device = device
        self.config = config
        self.core = SlotCore(self, listener)
        self._proc: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._stopping = threading.Event()
        self._kill_reason: str | None = None
        self._thread: threading.Thread | None = None
        self.restarts = 0

    # --- the Slot interface ---

    def start(self) -> None:
        # One thread spawns every child of this slot for the slot's whole life: the
        # parent-death signal fires when the spawning *thread* ends, so it must not be short.
        self._thread = threading.Thread(target=self._supervise, name=f"hotfolder-slot-{self.name}")
        self._thread.start()

    def ready(self) -> bool:
        return not self._stopping.is_set() and self.core.ready()

    def submit(self, ticket: Ticket) -> None:
        self.core.submitted(ticket.job_id)
        self._send(("ticket", ticket))

    def cancel(self, job_id: str) -> None:
        self._send(("cancel", job_id))

    def abort(self) -> None:
        self._send(("abort",))

    def kill(self, why: str) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._kill_reason = why
        log.error("slot %s: %s; killing its process %d", self.name, why, proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        self._stopping.set()
        self._send(("stop",))

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def info(self) -> dict[str, Any]:
        proc = self._proc
        return {
            "kind": "process",
            "host": socket.gethostname(),
            "pid": proc.pid if proc is not None and proc.poll() is None else None,
            "restarts": self.restarts,
        }

    # --- the supervising thread ---

    def _send(self, message: tuple[Any, ...]) -> None:
        conn = self._conn
        if conn is None:
            return
        # If the child is gone, the supervisor sees its end and reports its jobs lost.
        with self._send_lock, contextlib.suppress(OSError):
            conn.send(message)

    def _supervise(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                proc, conn = self._spawn()
            except OSError as e:
                self.core.failed(f"cannot start a slot process: {e}")
                failures += 1
            else:
                self._read(conn)
                with self._send_lock:
                    self._conn = None
                conn.close()
                code = proc.wait()
                why = self._kill_reason or describe_exit(code)
                self._kill_reason = None
                became_ready = self.core.loaded
                self.core.lost(f"the slot on {self.device} died: {why}")
                if self._stopping.is_set():
                    break
                failures = 0 if became_ready else failures + 1
                if became_ready:
                    log.error("slot %s: %s; restarting it", self.name, why)
                    self.core.failed(f"restarting after {why}")
                else:
                    note = self.core.note
                    if note in (None, "starting") or (note or "").startswith("restarting after"):
                        note = f"its process died while loading the editor: {why}"
                    log.error("slot %s could not start: %s", self.name, note)
                    self.core.failed(note or why)
                self.restarts += 1
            if failures:
                delay = RESTART_BACKOFF_SECONDS[min(failures, len(RESTART_BACKOFF_SECONDS)) - 1]
                self._stopping.wait(delay)

    def _spawn(self) -> tuple[subprocess.Popen[bytes], Connection]:
        proc, conn = spawn("hotfolder.slots.child", self.name)
        self._proc = proc
        with self._send_lock:
            conn.send(("config", self.config.model_dump_json(), self.device))
            self._conn = conn
            if self._stopping.is_set():
                conn.send(("stop",))  # `stop` came while this child was being started
        log.info("slot %s: started process %d on %s", self.name, proc.pid, self.device)
        return proc, conn

    def _read(self, conn: Connection) -> None:
        while True:
            try:
                event = conn.recv()
            except (EOFError, OSError):
                return
            self.core.handle(event)
