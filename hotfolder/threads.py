"""Threads that wait for short pieces of work for the life of the process."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


class DaemonPool:
    """Up to `size` threads, started on first use, that run what they are given.

    Daemons, unlike `ThreadPoolExecutor`'s: nothing has to shut them down, and a caller
    always waits for what it gave them, so no work is left half done when the process exits.
    """

    def __init__(self, size: int, *, name: str) -> None:
        self.size = size
        self.name = name
        self._tasks: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], T]) -> Future[T]:
        with self._lock:
            while len(self._threads) < self.size:
                thread = threading.Thread(target=self._serve, name=self.name, daemon=True)
                thread.start()
                self._threads.append(thread)
        future: Future[T] = Future()
        self._tasks.put((future, work))
        return future

    def _serve(self) -> None:
        while True:
            future, work = self._tasks.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(work())
            except BaseException as e:
                future.set_exception(e)
