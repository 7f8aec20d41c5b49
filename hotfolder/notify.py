"""Optional notifications: POST a job's final status JSON to its `notify_url`.

Sent from one background thread with retries and backoff, so a slow or dead
receiver never holds up the worker. Notifications still waiting when the
service stops are dropped (the status file and the history keep the record).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger(__name__)

ATTEMPTS = 6
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 60.0
TIMEOUT_SECONDS = 10.0
MAX_WAITING = 10_000


class Notifier:
    def __init__(
        self,
        *,
        attempts: int = ATTEMPTS,
        first_delay_seconds: float = FIRST_DELAY_SECONDS,
        timeout_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self.attempts = attempts
        self.first_delay_seconds = first_delay_seconds
        self.timeout_seconds = timeout_seconds
        self._queue: queue.Queue[tuple[float, int, str, bytes] | None] = queue.Queue(MAX_WAITING)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.sent = 0
        self.given_up = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hotfolder-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=self.timeout_seconds + 1)

    def send(self, url: str, payload: dict[str, Any]) -> None:
        """Queue one POST; never blocks (a full queue drops it, with a log line)."""
        body = json.dumps(payload).encode()
        try:
            self._queue.put_nowait((time.monotonic(), 1, url, body))
        except queue.Full:
            log.error("notification queue full; dropping the notification to %s", url)

    def _run(self) -> None:
        retry: list[tuple[float, int, str, bytes]] = []
        while not self._stop.is_set():
            now = time.monotonic()
            due = [item for item in retry if item[0] <= now]
            retry = [item for item in retry if item[0] > now]
            for item in due:
                self._attempt(item, retry)
            wait = min((item[0] for item in retry), default=now + 1.0) - time.monotonic()
            try:
                new = self._queue.get(timeout=max(0.01, min(wait, 1.0)))
            except queue.Empty:
                continue
            if new is None:
                return
            self._attempt(new, retry)

    def _attempt(
        self, item: tuple[float, int, str, bytes], retry: list[tuple[float, int, str, bytes]]
    ) -> None:
        _due, attempt, url, body = item
        request = urllib.request.Request(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": "hotfolder"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                response.read(1024)
            self.sent += 1
            return
        except (urllib.error.URLError, OSError, ValueError) as e:
            problem = str(e)
        if attempt >= self.attempts:
            self.given_up += 1
            log.error("notification to %s failed %d times (%s); giving up", url, attempt, problem)
            return
        delay = min(MAX_DELAY_SECONDS, self.first_delay_seconds * 2 ** (attempt - 1))
        log.warning("notification to %s failed (%s); retrying in %g s", url, problem, delay)
        retry.append((time.monotonic() + delay, attempt + 1, url, body))
