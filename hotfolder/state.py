"""What the service as a whole is doing, as queue.json shows it: paused, accepting, and
notes that say why something waits. Every part of the service sets its own note and
clears it when the cause ends; readers get a copy."""

from __future__ import annotations

import threading
from collections.abc import Callable


class ServiceState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notes: dict[str, str] = {}
        # Called after a note changes (the board's publisher wakes), outside the lock.
        self.watchers: list[Callable[[], object]] = []
        self.paused = False
        self.accepting = True  # False while admission waits (e.g. for disk space)

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
