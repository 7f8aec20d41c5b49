"""A slot whose editor runs in a thread of the service: for an editor object handed to
the service (tests, benchmarks). It cannot be restarted: a killed thread slot stays down."""

from __future__ import annotations

import os
import threading
from typing import Any

from hotfolder.config import Preset
from hotfolder.editors.base import Editor
from hotfolder.slots.base import SlotCore, SlotListener, Ticket
from hotfolder.slots.engine import Engine


class ThreadSlot:
    def __init__(
        self,
        name: str,
        device: str,
        editor: Editor,
        listener: SlotListener,
        *,
        warm_preset: Preset | None = None,
    ) -> None:
        self.name = name
        self.device = device
        self.core = SlotCore(self, listener)
        self.engine = Engine(editor, self.core.handle, device=device, warm_preset=warm_preset)
        self._thread: threading.Thread | None = None
        self._killed = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self.engine.run, name=f"hotfolder-slot-{self.name}")
        self._thread.start()

    def ready(self) -> bool:
        return not self._killed and self.core.ready()

    def submit(self, ticket: Ticket) -> None:
        self.core.submitted(ticket.job_id)
        self.engine.submit(ticket)

    def cancel(self, job_id: str) -> None:
        self.engine.cancel(job_id)

    def abort(self) -> None:
        self.engine.abort()

    def kill(self, why: str) -> None:
        # A thread cannot be killed; give up on it and whatever it holds.
        self._killed = True
        self.engine.abort()
        self.engine.stop()
        self.core.lost(why)
        self.core.failed(f"stopped after: {why}")

    def stop(self) -> None:
        self.engine.stop()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None and not self._killed:
            self._thread.join(timeout)

    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "kind": "thread"}
