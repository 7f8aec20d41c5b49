"""notify_url: the final status is POSTed to an allowed host (a server on 127.0.0.1), retried,
never blocking, never redirected; hosts not in notify.allowed_hosts are refused (SPEC: "Notifications")."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support import (
    ServiceProcess,
    drop_pair,
    has_status,
    hotfolder,
    make_image,
    wait_for,
    write_config,
    write_sidecar,
)

from hotfolder.config import Config, NotifyConfig, load_config
from hotfolder.errors import ConfigError, Reason, Rejected
from hotfolder.notify import Notifier, host_allowed, host_problem
from hotfolder.sidecar import resolve


class Receiver:
    """A local HTTP server that fails the first `failures` POSTs, then records them."""

    def __init__(
        self, failures: int = 0, delay_seconds: float = 0.0, redirect_to: str | None = None
    ) -> None:
        self.failures = failures
        self.redirect_to = redirect_to
        self.delay_seconds = delay_seconds
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                time.sleep(receiver.delay_seconds)
                if receiver.redirect_to is not None:
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                    self.end_headers()
                    return
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
    notifier = Notifier(allowed_hosts=["127.0.0.1"], first_delay_seconds=0.05)
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
        notifier = Notifier(allowed_hosts=["127.0.0.1"], attempts=3, first_delay_seconds=0.01)
        notifier.start()
        try:
            notifier.send(receiver.url, {"n": 1})
            wait_for(lambda: notifier.given_up == 1, timeout=30)
        finally:
            notifier.stop()
        assert receiver.attempts == 3


@pytest.mark.slow
def test_the_service_posts_final_statuses_without_waiting_for_the_receiver(tmp_path: Path) -> None:
    write_config(tmp_path, settle_seconds=0.1, notify={"allowed_hosts": ["127.0.0.1"]})
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
            # A sound request whose image is refused: its station hears of it too.
            make_image(tmp_path / "inbox" / "hooked" / "big.jpg", size=(3000, 40))
            write_sidecar(tmp_path / "inbox" / "hooked" / "big.yaml", instruction="warmer")
            # The slow receiver does not hold up the jobs behind the first.
            wait_for(lambda: has_status(tmp_path, "hooked/three", "completed"), timeout=30)
            assert len(receiver.received) < 2
            wait_for(lambda: len(receiver.received) == 3, timeout=60)
            assert service.stop() == 0
    by_name = {r["name"]: r for r in receiver.received}
    assert set(by_name) == {
        "hooked/one",
        "hooked/three",
        "hooked/big",
    }  # a sidecar that was itself refused is not trusted: `two` is not told
    assert by_name["hooked/one"]["status"] == "completed"
    assert by_name["hooked/one"]["result_path"] == "outbox/hooked/one.png"
    big = by_name["hooked/big"]
    assert (big["status"], big["error_code"], big["instruction"]) == (
        "failed",
        "too_large",
        "warmer",
    )


# --- notify.allowed_hosts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "allowed", "expected"),
    [
        ("hooks.example.lan", ["hooks.example.lan"], True),
        ("HOOKS.example.lan", ["hooks.example.lan"], True),
        ("a.example.lan", ["*.example.lan"], True),
        ("b.a.example.lan", ["*.example.lan"], True),
        ("example.lan", ["*.example.lan"], False),
        ("badexample.lan", ["*.example.lan"], False),
        ("example.lan.evil.com", ["*.example.lan"], False),
        ("127.0.0.1", ["hooks.example.lan", "*.example.lan"], False),
        ("127.0.0.1", ["127.0.0.1"], True),
        ("localhost", ["127.0.0.1"], False),
    ],
)
def test_host_allowed(host: str, allowed: list[str], expected: bool) -> None:
    assert host_allowed(host, allowed) is expected


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("http://127.0.0.1:8080/hook", "not in notify.allowed_hosts"),
        ("http://169.254.169.254/latest", "not in notify.allowed_hosts"),
        ("http://hooks.example.lan@127.0.0.1/", "not a plain http(s) URL"),
        ("http://127.0.0.1\\@hooks.example.lan/", "not a plain http(s) URL"),
        ("http://hooks.example.lan:port/", "not a URL"),
    ],
)
def test_urls_to_other_hosts_are_refused(url: str, hint: str) -> None:
    problem = host_problem(url, ["hooks.example.lan"])
    assert problem is not None
    assert problem.startswith("sidecar key `notify_url`")
    assert hint in problem
    assert host_problem("https://hooks.example.lan/done", ["hooks.example.lan"]) is None


def test_an_empty_list_means_notifications_are_off() -> None:
    problem = host_problem("https://hooks.example.lan/done", [])
    assert problem is not None and "notifications are off" in problem


def test_admission_refuses_a_host_not_listed_naming_the_key() -> None:
    config = Config(notify=NotifyConfig(allowed_hosts=["*.example.lan"]))
    layers = [("a.yaml", {"instruction": "x", "notify_url": "http://127.0.0.1:9/hook"})]
    with pytest.raises(Rejected) as info:
        resolve(layers, config=config)
    assert info.value.code is Reason.invalid_sidecar
    assert info.value.message.startswith("a.yaml: sidecar key `notify_url`: host '127.0.0.1'")
    ok = [("a.yaml", {"instruction": "x", "notify_url": "http://hooks.example.lan/h"})]
    assert resolve(ok, config=config).notify_url == "http://hooks.example.lan/h"
    with pytest.raises(Rejected, match="notifications are off"):
        resolve(ok, config=Config())


def test_a_bad_url_is_a_sentence_not_a_pattern() -> None:
    layers = [("a.yaml", {"instruction": "x", "notify_url": "hooks.example.lan/done"})]
    with pytest.raises(Rejected) as info:
        resolve(layers, config=Config(notify=NotifyConfig(allowed_hosts=["hooks.example.lan"])))
    assert "is not an http(s) URL" in info.value.message
    assert "^https" not in info.value.message


def test_allowed_hosts_in_the_config_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("notify:\n  allowed_hosts: [http://hooks.example.lan/]\n")
    with pytest.raises(ConfigError, match=r"notify\.allowed_hosts.*bare name"):
        load_config(path)
    path.write_text("notify:\n  allowed_hosts: [Hooks.Example.LAN, '*.lan', '[::1]']\n")
    assert load_config(path).notify.allowed_hosts == ["hooks.example.lan", "*.lan", "::1"]


def test_a_server_on_127_0_0_1_is_reached_only_when_listed() -> None:
    with Receiver() as receiver:
        refused = Notifier(allowed_hosts=["hooks.example.lan"], first_delay_seconds=0.01)
        allowed = Notifier(allowed_hosts=["127.0.0.1"], first_delay_seconds=0.01)
        for notifier in (refused, allowed):
            notifier.start()
        try:
            refused.send(receiver.url, {"n": "refused"})
            allowed.send(receiver.url, {"n": "allowed"})
            wait_for(lambda: receiver.received, timeout=30)
        finally:
            refused.stop()
            allowed.stop()
    assert receiver.received == [{"n": "allowed"}]
    assert receiver.attempts == 1


def test_redirects_are_never_followed() -> None:
    with Receiver() as target, Receiver(redirect_to="") as redirector:
        redirector.redirect_to = target.url
        notifier = Notifier(allowed_hosts=["127.0.0.1"], first_delay_seconds=0.01)
        notifier.start()
        try:
            notifier.send(redirector.url, {"n": 1})
            wait_for(lambda: notifier.given_up == 1, timeout=30)
        finally:
            notifier.stop()
    assert redirector.attempts == 1  # a redirect is not worth retrying
    assert target.attempts == 0


@pytest.mark.slow
def test_the_service_rejects_a_drop_whose_notify_url_is_not_allowed(tmp_path: Path) -> None:
    write_config(tmp_path, settle_seconds=0.1, notify={"allowed_hosts": ["*.example.lan"]})
    with Receiver() as receiver:
        drop_pair(tmp_path / "inbox", "hooked", notify_url=receiver.url)
        result = hotfolder("run", "--once", "--root", str(tmp_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
    status = has_status(tmp_path, "hooked", "failed")
    assert status is not None
    assert status["error_code"] == "invalid_sidecar"
    assert "notify_url" in status["error"]
    assert receiver.attempts == 0
