"""notify_url: the final status is POSTed to a server on 127.0.0.1, retried, never blocking."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import ServiceProcess, drop_pair, has_status, wait_for, write_config

from hotfolder.notify import Notifier


class Receiver:
    """A local HTTP server that fails the first `failures` POSTs, then records them."""

    def __init__(self, failures: int = 0, delay_seconds: float = 0.0) -> None:
        self.failures = failures
        self.delay_seconds = delay_seconds
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                time.sleep(receiver.delay_seconds)
                if receiver.attempts <= receiver.failures:
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.received.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver(failures=2) as r:
        yield r


def test_notifier_retries_with_backoff_until_the_receiver_answers(receiver: Receiver) -> None:
    notifier = Notifier(first_delay_seconds=0.05)
    notifier.start()
    try:
        started = time.monotonic()
        notifier.send(receiver.url, {"name": "x", "status": "completed"})
        assert time.monotonic() - started < 0.05  # queued, not sent inline
        wait_for(lambda: receiver.received, timeout=30)
    finally:
        notifier.stop()
    assert receiver.attempts == 3
    assert receiver.received == [{"name": "x", "status": "completed"}]


def test_notifier_gives_up_after_its_attempts() -> None:
    with Receiver(failures=100) as receiver:
        notifier = Notifier(attempts=3, first_delay_seconds=0.01)
        notifier.start()
        try:
            notifier.send(receiver.url, {"n": 1})
            wait_for(lambda: notifier.given_up == 1, timeout=30)
        finally:
            notifier.stop()
        assert receiver.attempts == 3


@pytest.mark.slow
def test_the_service_posts_final_statuses_without_waiting_for_the_receiver(tmp_path: Path) -> None:
    write_config(tmp_path, settle_seconds=0.1)
    with Receiver(failures=1, delay_seconds=3) as receiver:
        (tmp_path / "inbox" / "hooked").mkdir()
        (tmp_path / "inbox" / "hooked" / "_defaults.yaml").write_text(
            f"notify_url: {receiver.url}\n"
        )
        with ServiceProcess(tmp_path) as service:
            service.wait_ready()
            drop_pair(tmp_path / "inbox" / "hooked", "one")
            drop_pair(tmp_path / "inbox" / "hooked", "two", colour="red")
            drop_pair(tmp_path / "inbox" / "hooked", "three")
            # The slow receiver does not hold up the jobs behind the first.
            wait_for(lambda: has_status(tmp_path, "hooked/three", "completed"), timeout=30)
            assert len(receiver.received) < 2
            wait_for(lambda: len(receiver.received) == 2, timeout=60)
            assert service.stop() == 0
    by_name = {r["name"]: r for r in receiver.received}
    assert set(by_name) == {
        "hooked/one",
        "hooked/three",
    }  # a rejected drop's sidecar is not trusted
    assert by_name["hooked/one"]["status"] == "completed"
    assert by_name["hooked/one"]["result_path"] == "outbox/hooked/one.png"
