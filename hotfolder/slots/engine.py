"""The slot's side of a slot: load the editor once, edit tickets one at a time, encode
each result on a second thread while the next edit runs.

It runs wherever the editor lives: in a process of its own (`slots.child`), in a thread
of the service (`slots.thread`), or in a Ray actor. It speaks in events, plain tuples
handed to `emit`, which must never block the editing thread for long:

    ("ready", device)                  the editor is loaded (and warmed up)
    ("load_failed", message)           it cannot be; the engine stops
    ("progress", job_id, step, steps)
    ("edited", job_id)                 the device is free; the result is being encoded
    ("outcome", Outcome)
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hotfolder import images, render
from hotfolder.config import Preset
from hotfolder.editors.base import Editor, EditResult
from hotfolder.errors import HotfolderError
from hotfolder.slots.base import Outcome, Ticket

log = logging.getLogger(__name__)

Event = tuple[Any, ...]


class Engine:
    def __init__(
        self,
        editor: Editor,
        emit: Callable[[Event], None],
        *,
        device: str,
        warm_preset: Preset | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.editor = editor
        self.emit = emit
        self.device = device
        self.warm_preset = warm_preset
        self.clock = clock
        self.aborting = threading.Event()
        self._tickets: queue.Queue[Ticket | None] = queue.Queue()
        self._results: queue.Queue[tuple[Ticket, EditResult, float] | Outcome | None] = (
            queue.Queue()
        )
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    # --- from the queue's side (any thread) ---

    def submit(self, ticket: Ticket) -> None:
        self._tickets.put(ticket)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancelled.add(job_id)

    def abort(self) -> None:
        self.aborting.set()

    def stop(self) -> None:
        """Finish the tickets already given, then return from `run`."""
        self._tickets.put(None)

    # --- the slot's own threads ---

    def load(self) -> bool:
        try:
            self.editor.load()
            if self.warm_preset is not None:
                # The default preset's LoRA loads now: a missing one stops start-up, not a job.
                self.editor.prepare(self.warm_preset)
                # Compilation and the like happen before the slot says it is ready.
                self.editor.warm_up(self.warm_preset)
        except HotfolderError as e:
            self.emit(("load_failed", str(e)))
            return False
        except Exception as e:
            log.exception("the %s editor could not load on %s", self.editor.name, self.device)
            self.emit(("load_failed", f"{type(e).__name__}: {e}"))
            return False
        self.emit(("ready", self.device))
        return True

    def run(self) -> None:
        """Load, then edit until stopped; the encoder thread runs beside the edits."""
        if not self.load():
            return
        encoder = threading.Thread(target=self._encode_loop, name="hotfolder-encode")
        encoder.start()
        try:
            while (ticket := self._tickets.get()) is not None:
                self._edit(ticket)
        finally:
            self._results.put(None)
            encoder.join()

    def _edit(self, ticket: Ticket) -> None:
        shown: tuple[int, int] | None = None

        def report(step: int, steps: int) -> None:
            nonlocal shown
            if shown != (step, steps):
                shown = (step, steps)
                self.emit(("progress", ticket.job_id, step, steps))

        guard = render.StepGuard(
            ticket,
            report,
            cancelled=lambda: self._is_cancelled(ticket.job_id),
            aborting=self.aborting,
            clock=self.clock,
        )
        started = self.clock()
        try:
            # A job cancelled or stopped before it started never reaches the editor.
            guard(0, ticket.steps)
            result: EditResult | Outcome = render.attempt(self.editor, ticket, guard)
        except Exception as e:
            result = render.failure(ticket, e)
        seconds = self.clock() - started
        self.emit(("edited", ticket.job_id))
        # Failures go through the encoder's queue too, so outcomes leave in edit order.
        self._results.put(result if isinstance(result, Outcome) else (ticket, result, seconds))

    def _deliver(self, outcome: Outcome) -> None:
        with self._lock:
            self._cancelled.discard(outcome.job_id)
        self.emit(("outcome", outcome))

    def _encode_loop(self) -> None:
        # The 'after' thumbnail is made beside the encode, on a core of its own if free.
        with (
            ThreadPoolExecutor(1, thread_name_prefix="hotfolder-thumb") as beside,
            images.EncodeBuffer() as buffer,
        ):
            while (item := self._results.get()) is not None:
                if isinstance(item, Outcome):
                    self._deliver(item)
                else:
                    self._deliver(render.finish(*item, beside, buffer))

    def _is_cancelled(self, job_id: str) -> bool:
        with self._lock:
            return job_id in self._cancelled
