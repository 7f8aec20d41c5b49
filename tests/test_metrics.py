"""Prometheus metrics: the SPEC's names, a textfile node_exporter can read, a /metrics port."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from support import ServiceProcess, drop_pair, has_status, read_json, wait_for, write_config

from hotfolder.config import Config, load_config
from hotfolder.errors import ConfigError
from hotfolder.jobstatus import JobStatus
from hotfolder.metrics import Metrics
from hotfolder.recent import Finished
from hotfolder.spool import JobState
from hotfolder.view import View

SPEC_NAMES = {
    "hotfolder_jobs",  # a counter's family name; samples are hotfolder_jobs_total
    "hotfolder_rejections",
    "hotfolder_queue_depth",
    "hotfolder_jobs_in_flight",
    "hotfolder_job_duration_seconds",
    "hotfolder_heartbeat_timestamp_seconds",
    "hotfolder_worker_busy_ratio",
    "hotfolder_paused",
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample, by (name, sorted labels); the parser refuses anything malformed."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def families(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ended(name: str, state: JobState, **fields: object) -> Finished:
    status = JobStatus(job_id=name, name=name, status=state, model="qwen-4step", **fields)  # type: ignore[arg-type]
    return Finished(status, time.time(), seconds=12.0)


def test_endings_and_views_become_metrics_in_a_textfile(tmp_path: Path) -> None:
    config = Config(root=tmp_path, metrics={"textfile": "node/hotfolder.prom"})  # type: ignore[arg-type]
    (tmp_path / "node").mkdir()
    metrics = Metrics(config)
    metrics.start()
    metrics.ended(ended("a", JobState.completed))
    metrics.ended(ended("b", JobState.failed, error_code="timeout"))
    rejected = JobStatus(job_id="c", name="c", status=JobState.failed, error_code="queue_full")
    metrics.ended(Finished(rejected, time.time(), rejected=True))
    view = View(
        at=1_800_000_000.0, state="paused", paused=True, accepting=True, observer="native",
        max_queue_size=10,
        workers=[{"worker": "cpu#1", "device": "cpu", "busy_ratio": 0.25},
                 {"worker": "cpu#2", "device": "cpu", "busy_ratio": 0.5}],
        queued=[JobStatus(job_id="q", name="q", status=JobState.queued)],
    )  # fmt: skip
    metrics.write(view)
    text = (tmp_path / "node" / "hotfolder.prom").read_text()
    assert set(families(text)) >= SPEC_NAMES
    assert families(text)["hotfolder_job_duration_seconds"] == "histogram"
    found = samples(text)
    assert found[("hotfolder_jobs_total", (("status", "completed"),))] == 1
    assert found[("hotfolder_jobs_total", (("status", "failed"),))] == 2
    assert found[("hotfolder_jobs_total", (("status", "cancelled"),))] == 0
    assert found[("hotfolder_rejections_total", (("reason", "queue_full"),))] == 1
    assert ("hotfolder_rejections_total", (("reason", "timeout"),)) not in found
    assert found[("hotfolder_failures_total", (("reason", "timeout"),))] == 1
    assert found[("hotfolder_job_duration_seconds_count", (("preset", "qwen-4step"),))] == 1
    assert found[("hotfolder_job_duration_seconds_sum", (("preset", "qwen-4step"),))] == 12.0
    assert found[("hotfolder_queue_depth", ())] == 1
    assert found[("hotfolder_paused", ())] == 1
    assert found[("hotfolder_heartbeat_timestamp_seconds", ())] == 1_800_000_000.0
    assert found[("hotfolder_worker_busy_ratio", (("device", "cpu"), ("worker", "cpu#2")))] == 0.5
    assert found[("hotfolder_state", (("hotfolder_state", "paused"),))] == 1
    assert list((tmp_path / "node").iterdir()) == [tmp_path / "node" / "hotfolder.prom"]
    metrics.stop()


def test_metrics_settings_are_checked_and_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.textfile.*\.prom"):
        load_config(root=tmp_path, overrides={"metrics.textfile": "m.txt"})
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        load_config(root=tmp_path, overrides={"metrics.port": 70000})
    missing = Metrics(load_config(root=tmp_path, overrides={"metrics.textfile": "no/m.prom"}))
    with pytest.raises(ConfigError, match=r"metrics\.textfile: the folder .*no does not exist"):
        missing.start()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = Metrics(load_config(root=tmp_path, overrides={"metrics.port": port}))
        with pytest.raises(ConfigError, match=rf"metrics\.port {port}: cannot listen"):
            busy.start()


@pytest.mark.slow
def test_a_running_service_serves_metrics_and_keeps_the_textfile(tmp_path: Path) -> None:
    """Pass: /metrics on 127.0.0.1 parses, counts the endings and the rejection, times the
    completed jobs by preset; the textfile says the same and, after the stop, `stopped`."""
    port = free_port()
    write_config(tmp_path, metrics={"port": port, "textfile": "hotfolder.prom"})
    inbox = tmp_path / "inbox"
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        drop_pair(inbox, "one")
        drop_pair(inbox, "two")
        drop_pair(inbox, "bad", colour="red")
        for name in ("one", "two", "bad"):
            wait_for(lambda name=name: has_status(tmp_path, name, "completed", "failed"))

        def scraped() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
                found = samples(reply.read().decode())
            done = found.get(("hotfolder_jobs_total", (("status", "completed"),)))
            return found if done == 2 else None

        found = wait_for(scraped, what="two completed jobs in /metrics")
        assert found[("hotfolder_jobs_total", (("status", "failed"),))] == 1
        assert found[("hotfolder_rejections_total", (("reason", "invalid_sidecar"),))] == 1
        assert found[("hotfolder_job_duration_seconds_count", (("preset", "qwen-4step"),))] == 2
        assert found[("hotfolder_paused", ())] == 0
        assert found[("hotfolder_worker_busy_ratio", (("device", "cpu"), ("worker", "cpu")))] >= 0
        beat = found[("hotfolder_heartbeat_timestamp_seconds", ())]
        assert abs(beat - time.time()) < 60
        assert service.stop() == 0, service.log()
    text = (tmp_path / "hotfolder.prom").read_text()
    final = samples(text)
    assert final[("hotfolder_state", (("hotfolder_state", "stopped"),))] == 1
    assert final[("hotfolder_jobs_total", (("status", "completed"),))] == 2
    assert (read_json(tmp_path / "outbox" / "queue.json") or {})["state"] == "stopped"
