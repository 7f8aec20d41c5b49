"""What the service as a whole is doing, as queue.json shows it: its phase (starting,
running, stopping, stopped), paused, accepting, and notes that say why something waits.
Every part of the service sets its own note and clears it when the cause ends; readers
get a copy."""

from __future__ import annotations

import threading
from collections.abc import Callable
from enum import StrEnum


class Phase(StrEnum):
    starting = "starting"  # recovering the queue, loading the editors
    running = "running"
    stopping = "stopping"  # a signal came: the jobs in flight finish, no new one starts
    stopped = "stopped"  # written on a clean stop; a service that holds no lock is stopped too


class ServiceState:
    def __init__(self, phase: Phase = Phase.running) -> None:
        """`phase`: a state without a service around it (tests, one-off commands) says
        running unless told; the service walks it from stopped through starting."""
        self._lock = threading.Lock()
        self._notes: dict[str, str] = {}
        # Called after a note changes (the board's publisher wakes), outside the lock.
        self.watchers: list[Callable[[], object]] = []
        self.phase = phase
        self.paused = False
        self.accepting = True  # False while admission waits (e.g. for disk space)

    @property
    def shown(self) -> str:
        """queue.json's `state`: the phase, or `paused` while a running service is paused."""
        if self.phase == Phase.running and self.paused:
            return "paused"
        return self.phase.value

    @property
    def starts_jobs(self) -> bool:
        """Whether a queued job will start without anyone doing anything (waits mean something)."""
        return self.phase in (Phase.starting, Phase.running) and not self.paused

    def note(self, source: str, text: str | None) -> bool:
        """Set (or with None clear) the note of `source`; True if it changed."""
        with self._lock:
            if self._notes.get(source) == text:
                return False
            if text is None:
                self._notes.pop(source, None)
            else:
                self._notes[source] = text
        for watcher in self.watchers:
            watcher()
        return True

    def get(self, source: str) -> str | None:
        with self._lock:
            return self._notes.get(source)

    def notes(self) -> dict[str, str]:
        with self._lock:
            return dict(self._notes)

    def clear_notes(self) -> None:
        """The service stopped: what was wrong while it ran is no longer current."""
        with self._lock:
            self._notes.clear()
        for watcher in self.watchers:
            watcher()
