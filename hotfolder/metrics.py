"""Prometheus metrics (`prometheus_client`): a textfile for node_exporter's textfile collector
(`metrics.textfile`, rewritten atomically) and an HTTP `/metrics` endpoint (`metrics.port`).

Counters and the duration histogram move with each ending (the board's listeners); gauges
are set from each published view. The registry is the service's own, not the library's
global one, so two services in one process (tests) never share numbers.
"""

from __future__ import annotations

import logging
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    generate_latest,
    start_http_server,
)

from hotfolder import __version__, fsops
from hotfolder.config import Config
from hotfolder.errors import ConfigError, Reason
from hotfolder.recent import Finished
from hotfolder.spool import FINAL_STATES, JobState
from hotfolder.view import View

log = logging.getLogger(__name__)

STATES = ["starting", "running", "paused", "stopping", "stopped"]
# Seconds; from a 4-step preset on a fast GPU to a 40-step one on a slow card.
DURATION_BUCKETS = (1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600, 1200, 3600)
# The page write: the figure `page_write_ms_p95` (benchmarks/run.py) is read from these.
PAGE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0)


class Metrics:
    name = "metrics textfile"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.textfile = config.metrics_textfile
        self.registry = registry = CollectorRegistry()
        Info("hotfolder", "The service's version.", registry=registry).info(
            {"version": __version__}
        )
        self.jobs = Counter(
            "hotfolder_jobs", "Jobs that ended, by final status.", ["status"], registry=registry
        )
        self.rejections = Counter(
            "hotfolder_rejections",
            "Drops refused at intake (never queued), by reason code.",
            ["reason"],
            registry=registry,
        )
        self.failures = Counter(
            "hotfolder_failures",
            "Jobs and drops that ended in failed/, by reason code.",
            ["reason"],
            registry=registry,
        )
        self.duration = Histogram(
            "hotfolder_job_duration_seconds",
            "From a completed job's start to its end, by preset.",
            ["preset"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self._gauges(registry)
        self.page_write = Histogram(
            "hotfolder_page_write_seconds",
            "Rendering and writing outbox/index.html.",
            buckets=PAGE_BUCKETS,
            registry=registry,
        )
        for state in FINAL_STATES:
            self.jobs.labels(state.value)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _gauges(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge("hotfolder_queue_depth", "Jobs queued.", registry=registry)
        self.in_flight = Gauge(
            "hotfolder_jobs_in_flight", "Jobs being edited or encoded.", registry=registry
        )
        self.waiting = Gauge(
            "hotfolder_drops_waiting",
            "Drops seen in inbox/ and not admitted yet (copying, waiting for a sidecar).",
            registry=registry,
        )
        self.heartbeat = Gauge(
            "hotfolder_heartbeat_timestamp_seconds",
            "When the service last published its state (Unix time).",
            registry=registry,
        )
        self.busy = Gauge(
            "hotfolder_worker_busy_ratio",
            "Share of the last 10 minutes each worker spent editing.",
            ["device", "worker"],
            registry=registry,
        )
        self.paused = Gauge("hotfolder_paused", "1 while the service is paused.", registry=registry)
        self.accepting = Gauge(
            "hotfolder_accepting", "0 while admission waits for disk space.", registry=registry
        )
        self.state = Enum(
            "hotfolder_state", "The service's state.", states=STATES, registry=registry
        )

    # --- from the board ---

    def ended(self, finished: Finished) -> None:
        """A board listener: count the ending, time a completed job."""
        status = finished.status
        # Its time and reason first, the count of jobs last: a scrape in between never sees
        # a job counted whose time or reason is not there yet.
        if status.status == JobState.completed and finished.seconds is not None:
            self.duration.labels(status.model or "-").observe(finished.seconds)
        if status.status == JobState.failed:
            reason = status.error_code or Reason.edit_failed.value
            self.failures.labels(reason).inc()
            if finished.rejected:
                self.rejections.labels(reason).inc()
        self.jobs.labels(status.status.value).inc()

    def show(self, view: View) -> None:
        self.queue_depth.set(len(view.queued))
        self.in_flight.set(len(view.running))
        self.waiting.set(len(view.waiting))
        self.heartbeat.set(view.at)
        self.paused.set(1 if view.paused else 0)
        self.accepting.set(1 if view.accepting else 0)
        self.state.state(view.state)
        for row in view.workers:
            self.busy.labels(str(row.get("device")), str(row.get("worker"))).set(
                float(row.get("busy_ratio") or 0.0)
            )

    # --- the textfile (a publisher renderer) and the endpoint ---

    def write(self, view: View) -> None:
        self.show(view)
        if self.textfile is not None:
            fsops.write_atomic(self.textfile, generate_latest(self.registry))

    def text(self) -> bytes:
        return generate_latest(self.registry)

    def start(self) -> None:
        """Check the textfile's folder and open the port; a ConfigError names the key."""
        if self.textfile is not None and not self.textfile.parent.is_dir():
            raise ConfigError(
                f"metrics.textfile: the folder {self.textfile.parent} does not exist; "
                "create it (node_exporter's --collector.textfile.directory) or fix the path"
            )
        port, host = self.config.metrics.port, self.config.metrics.host
        if port is None:
            return
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise ConfigError(
                f"metrics.port {port}: cannot listen on {host}:{port} ({e.strerror or e}); "
                "choose a free port or another metrics.host"
            ) from e
        log.info("metrics: http://%s:%d/metrics", host, port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
