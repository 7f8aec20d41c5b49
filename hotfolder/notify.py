"""Optional notifications: POST a job's final status JSON to its `notify_url`.

Sent from one background thread with retries and backoff, so a slow or dead
receiver never holds up the worker. Notifications still waiting when the
service stops are dropped (the status file and the history keep the record).

A station that can write a sidecar is not trusted with the network: a URL is used
only when its host is in `notify.allowed_hosts` (checked at admission and again
before sending, since the list may have changed across a restart), and a redirect
is never followed (it could point anywhere, 127.0.0.1 included).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

ATTEMPTS = 6
FIRST_DELAY_SECONDS = 1.0
MAX_DELAY_SECONDS = 60.0
TIMEOUT_SECONDS = 10.0
MAX_WAITING = 10_000


def host_problem(url: str, allowed_hosts: Sequence[str]) -> str | None:
    """Why `url` may not be notified (a sentence naming `notify_url`), or None when it may."""
    if not allowed_hosts:
        return (
            "sidecar key `notify_url`: notifications are off on this service "
            "(notify.allowed_hosts is empty); remove notify_url, or ask the operator "
            "to list its host in notify.allowed_hosts"
        )
    try:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").rstrip(".")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return f"sidecar key `notify_url`: {url!r} is not a URL; write http://HOST/PATH"
    # `user@host` and backslashes are read differently by different parsers; refuse both.
    if parts.scheme not in ("http", "https") or not host or "@" in parts.netloc or "\\" in url:
        return (
            f"sidecar key `notify_url`: {url!r} is not a plain http(s) URL; "
            "write http://HOST/PATH or https://HOST/PATH"
        )
    if not host_allowed(host, allowed_hosts):
        listed = ", ".join(allowed_hosts)
        return (
            f"sidecar key `notify_url`: host {host!r} is not in notify.allowed_hosts "
            f"({listed}); use one of those hosts, or ask the operator to add it"
        )
    return None


def host_allowed(host: str, allowed_hosts: Sequence[str]) -> bool:
    """Exact names, or `*.example.lan` for any name ending in `.example.lan` (not the domain itself)."""
    host = host.lower()
    for entry in allowed_hosts:
        if entry.startswith("*."):
            if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                return True
        elif host == entry:
            return True
    return False


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        # None makes urllib raise the 3xx as an HTTPError: a failed attempt, never a new host.
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


class Notifier:
    def __init__(
        self,
        *,
        allowed_hosts: Sequence[str] = (),
        attempts: int = ATTEMPTS,
        first_delay_seconds: float = FIRST_DELAY_SECONDS,
        timeout_seconds: float = TIMEOUT_SECONDS,
    ) -> None:
        self.allowed_hosts = tuple(allowed_hosts)
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
        """Queue one POST; never blocks (a full queue drops it, with a log line).

        A URL whose host is not allowed (any more) is dropped with a log line.
        """
        problem = host_problem(url, self.allowed_hosts)
        if problem is not None:
            log.warning("not notifying %s: %s", url, problem.removeprefix("sidecar key "))
            return
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
            with _OPENER.open(request, timeout=self.timeout_seconds) as response:
                response.read(1024)
            self.sent += 1
            return
        except urllib.error.HTTPError as e:
            if 300 <= e.code < 400:
                self.given_up += 1
                log.error(
                    "notification to %s answered %d (a redirect to %s); redirects are never "
                    "followed: point notify_url at the final address",
                    url,
                    e.code,
                    e.headers.get("Location", "?"),
                )
                return
            problem = str(e)
        except (urllib.error.URLError, OSError, ValueError) as e:
            problem = str(e)
        if attempt >= self.attempts:
            self.given_up += 1
            log.error("notification to %s failed %d times (%s); giving up", url, attempt, problem)
            return
        delay = min(MAX_DELAY_SECONDS, self.first_delay_seconds * 2 ** (attempt - 1))
        log.warning("notification to %s failed (%s); retrying in %g s", url, problem, delay)
        retry.append((time.monotonic() + delay, attempt + 1, url, body))
