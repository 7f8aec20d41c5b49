"""What stations read: one status JSON per job and `outbox/queue.json`, always whole.

The Board holds the live view (queued and processing jobs, recently finished
counts) and writes a job's status file whenever anything a station can see in
it changes: state, position, estimated wait, progress.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from hotfolder import fsops
from hotfolder.config import Config
from hotfolder.layout import Layout
from hotfolder.order import QueueOrder
from hotfolder.spool import FINAL_STATES, JobState, Manifest
from hotfolder.state import ServiceState

log = logging.getLogger(__name__)

SCHEMA = 1
HEARTBEAT_SECONDS = 5.0
# The publisher rewrites changed status files (progress, positions) at most this often.
PUBLISH_MIN_SECONDS = 0.1
# Positions and estimated waits of queued jobs are refreshed in their files at most this often.
POSITION_REFRESH_SECONDS = 1.0


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Progress(BaseModel):
    model_config = ConfigDict(frozen=True)
    step: int
    steps: int


class JobStatus(BaseModel):
    """The status JSON of one job, field for field as the SPEC shows it."""

    model_config = ConfigDict(frozen=True)

    schema_: int = SCHEMA
    job_id: str
    name: str
    status: JobState
    position: int | None = None
    estimated_wait_seconds: float | None = None
    progress: Progress | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    source: str | None = None
    instruction: str | None = None
    model: str | None = None
    result_path: str | None = None
    result_seed: int | None = None
    error_code: str | None = None
    error: str | None = None
    attempts: int = 1
    device: str | None = None  # the worker's device; null until processing
    # Beyond the SPEC's fields: what the service is doing right now ("loading model"),
    # and the errors of earlier attempts, kept across retries.
    detail: str | None = None
    errors: list[str] = []

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data = {"schema": data.pop("schema_"), **data}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobStatus:
        data = dict(data)
        data["schema_"] = data.pop("schema", SCHEMA)
        return cls.model_validate(data)


def status_from_manifest(manifest: Manifest, **changes: Any) -> JobStatus:
    spec = manifest.spec
    fields: dict[str, Any] = {
        "job_id": manifest.job_id,
        "name": manifest.name,
        "status": manifest.state,
        "created_at": manifest.created_at,
        "started_at": manifest.started_at,
        "completed_at": manifest.completed_at,
        "source": manifest.source,
        "instruction": spec.get("instruction"),
        "model": spec.get("preset"),
        "result_path": manifest.result_path,
        "result_seed": manifest.seed,
        "error_code": manifest.error_code,
        "error": manifest.error,
        "attempts": manifest.attempts,
        "device": manifest.device,
        "errors": manifest.errors,
    }
    fields.update(changes)
    return JobStatus(**fields)


def read_status(path: Path) -> JobStatus | None:
    try:
        return JobStatus.from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        return None


class Recorder(Protocol):
    def record(self, status: JobStatus) -> None: ...


class Estimator:
    """Moving average of recent job times per preset, seeded by the preset's nominal time."""

    WINDOW = 10

    def __init__(self, config: Config) -> None:
        self._config = config
        self._times: dict[str, deque[float]] = {}

    def add(self, preset: str, seconds: float) -> None:
        self._times.setdefault(preset, deque(maxlen=self.WINDOW)).append(seconds)

    def seconds(self, preset: str) -> float:
        times = self._times.get(preset)
        if times:
            return sum(times) / len(times)
        known = self._config.presets.get(preset)
        return known.nominal_seconds if known else 60.0


class _Entry:
    """A queued or processing job as the board shows it."""

    __slots__ = ("key", "preset", "started", "status")

    def __init__(self, key: tuple[int, int, int], status: JobStatus, preset: str) -> None:
        self.key = key
        self.status = status
        self.preset = preset
        self.started: float | None = None  # monotonic, while processing


class Board:
    """The live view of the queue, published as status files and queue.json.

    Two locks, never held together by a caller: `_lock` guards the view and is held only
    for memory work; `_io` orders the status-file writes, so a publish that snapshotted a
    job's older state can never overwrite its final status. Progress goes into its own
    small dict, so the slot's thread reporting it waits on nothing the publisher holds.
    """

    def __init__(
        self,
        layout: Layout,
        config: Config,
        *,
        state: ServiceState | None = None,
        observer: Callable[[], str] = lambda: "native",
        workers: Callable[[], list[dict[str, Any]]] = list,
        slots: Callable[[], int] = lambda: 1,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        history: Recorder | None = None,
    ) -> None:
        self.layout = layout
        self.config = config
        self.state = state if state is not None else ServiceState()
        self.estimator = Estimator(config)
        self.history = history
        self._observer = observer
        self._workers = workers
        self._slots = slots
        self._clock = clock
        self._monotonic = monotonic
        # The order in force; Jobs shares its own with the spool, so positions follow claims.
        self.order = QueueOrder(config.dispatch)
        self._lock = threading.RLock()
        self._io = threading.Lock()
        self._active: dict[str, _Entry] = {}
        self._closed: set[str] = set()  # job ids whose final status is written
        self._written: dict[str, dict[str, Any]] = {}
        self._finished: dict[str, tuple[str, JobState, float]] = {}
        self._progress: dict[str, Progress] = {}
        self._progress_lock = threading.Lock()
        self._positions_at = -POSITION_REFRESH_SECONDS
        self._positions_every = POSITION_REFRESH_SECONDS
        self.changed = threading.Event()  # set on every change; the publisher waits on it
        self.state.watchers.append(self.changed.set)

    @property
    def notes(self) -> dict[str, str]:
        return self.state.notes()

    # --- start-up ---

    def load_finished(self) -> None:
        """Count finished jobs whose status files are still in outbox/ (for queue.json)."""
        if not self.layout.outbox.is_dir():
            return
        for dirpath, _dirs, files in os.walk(self.layout.outbox):
            for file_name in files:
                if not file_name.endswith(".status.json") or fsops.is_temp_name(file_name):
                    continue
                status = read_status(Path(dirpath) / file_name)
                if status is None or status.status not in FINAL_STATES:
                    continue
                done = parse_iso(status.completed_at) or self._clock()
                self._finished[status.job_id] = (status.name, status.status, done)

    # --- state changes (from Jobs) ---

    def queued(self, manifest: Manifest, detail: str | None = None) -> None:
        status = status_from_manifest(manifest, status=JobState.queued, detail=detail)
        with self._lock:
            self._active[manifest.job_id] = _Entry(
                manifest.sort_key, status, manifest.spec["preset"]
            )
            self._finished.pop(manifest.job_id, None)
            self._closed.discard(manifest.job_id)
        self._forget_progress(manifest.job_id)
        self._record(status)
        self.changed.set()

    def processing(self, manifest: Manifest, detail: str | None = None) -> None:
        status = status_from_manifest(manifest, status=JobState.processing, detail=detail)
        with self._lock:
            entry = _Entry(manifest.sort_key, status, manifest.spec["preset"])
            entry.started = self._monotonic()
            self._active[manifest.job_id] = entry
        self._forget_progress(manifest.job_id)
        self._record(status)
        self.changed.set()

    def progress(self, job_id: str, step: int, steps: int) -> None:
        with self._progress_lock:
            self._progress[job_id] = Progress(step=step, steps=steps)
        self.changed.set()

    def progress_of(self, job_id: str) -> Progress | None:
        with self._progress_lock:
            return self._progress.get(job_id)

    def _forget_progress(self, job_id: str) -> None:
        with self._progress_lock:
            self._progress.pop(job_id, None)

    def finished(self, status: JobStatus) -> None:
        """A job (or a rejected drop) reached a final state: write it and count it."""
        with self._io:
            # Written first: if the disk refuses it, the caller keeps the job and tries again.
            self._write_now(status, must=True)
            with self._lock:
                self._closed.add(status.job_id)
                self._written.pop(status.job_id, None)
                entry = self._active.pop(status.job_id, None)
                timed = entry is not None and entry.started is not None
                if timed and status.status == JobState.completed:
                    assert entry is not None and entry.started is not None
                    self.estimator.add(entry.preset, self._monotonic() - entry.started)
                self._finished[status.job_id] = (status.name, status.status, self._clock())
        self._forget_progress(status.job_id)
        self._record(status)
        self.changed.set()

    def _record(self, status: JobStatus) -> None:
        if self.history is None:
            return
        try:
            self.history.record(status)
        except Exception:
            # The history is a convenience; a locked or broken database never stops a job.
            log.exception("could not record %s in the history", status.name)

    # --- publishing ---

    def _write_now(self, status: JobStatus, *, must: bool = False) -> None:
        """Write one status file; the caller holds `_io`."""
        data = status.to_json()
        if self._written.get(status.job_id) == data:
            return
        try:
            fsops.write_json_atomic(self.layout.status_path(status.name), data)
        except OSError as e:
            if must:
                raise
            # A full or read-only outbox: keep going, say so, and write it again next time.
            self._write_failed(e)
            return
        self._written[status.job_id] = data
        self.state.note("outbox", None)

    def _write_failed(self, error: OSError) -> None:
        self.changed.set()
        note = f"cannot write to outbox/: {error.strerror or error}"
        if self.state.note("outbox", note):
            log.error("%s; status files are stale until it is writable again", note)

    def publish(self, *, positions: bool = False) -> None:
        """Recompute positions and waits, rewrite what changed, and write queue.json.

        `positions`: rewrite every queued job's position now (at start and at the last
        publish before the service stops), not at most once a second."""
        self.changed.clear()
        if positions:
            with self._lock:
                self._positions_at = -self._positions_every
        writes, queue, refresh = self._snapshot()
        started = time.monotonic()
        for status in writes:
            with self._io:
                with self._lock:
                    if status.job_id in self._closed:
                        continue  # its final status is written; this view is older
                self._write_now(status)
        if refresh:
            # One atomic write per queued job: for 1,000 jobs a refresh takes seconds, and
            # every second would leave the workers no time (benchmarks/README.md, burst).
            # Refreshing at most a tenth of the time keeps positions fresh and jobs moving.
            took = time.monotonic() - started
            self._positions_every = max(POSITION_REFRESH_SECONDS, 10 * took)
        self._write_queue(queue)

    def _snapshot(self) -> tuple[list[JobStatus], dict[str, Any], bool]:
        """Under the lock, in memory only: the statuses to write and queue.json's content."""
        with self._lock:
            now_mono = self._monotonic()
            entries = list(self._active.values())
            queued = self.order.arrange(
                (e for e in entries if e.status.status == JobState.queued),
                key=lambda e: e.key,
                name=lambda e: e.status.name,
            )
            running = sorted(
                (e for e in entries if e.status.status == JobState.processing),
                key=lambda e: (e.status.started_at or "", e.key),
            )
            # A new state is written at once; a new position or wait at most once a
            # second, so a long queue does not rewrite every file on every claim.
            refresh = now_mono - self._positions_at >= self._positions_every
            writes: list[JobStatus] = []
            for position, (entry, wait) in enumerate(
                zip(queued, self._waits(queued, running, now_mono), strict=True), start=1
            ):
                entry.status = entry.status.model_copy(
                    update={"position": position, "estimated_wait_seconds": wait}
                )
                written = self._written.get(entry.status.job_id)
                if refresh or written is None or written.get("status") != "queued":
                    writes.append(entry.status)
                else:
                    self.changed.set()  # a position is stale: come back within a second
            if refresh:
                self._positions_at = now_mono
            for entry in running:
                entry.status = entry.status.model_copy(
                    update={"progress": self.progress_of(entry.status.job_id)}
                )
                writes.append(entry.status)
            queue = self._queue_payload([e.status for e in queued], [e.status for e in running])
        return writes, queue, refresh

    def _waits(self, queued: list[_Entry], running: list[_Entry], now: float) -> list[float | None]:
        """Estimated seconds until each queued job starts: its turn on the first free slot."""
        if self.state.paused:
            return [None] * len(queued)
        slots = max(1, self._slots())
        free_at = [
            max(0.0, self.estimator.seconds(e.preset) - (now - (e.started or now))) for e in running
        ][:slots]
        free_at += [0.0] * (slots - len(free_at))
        heapq.heapify(free_at)
        waits: list[float | None] = []
        for entry in queued:
            start = heapq.heappop(free_at)
            waits.append(round(start, 1))
            heapq.heappush(free_at, start + self.estimator.seconds(entry.preset))
        return waits

    def _queue_payload(self, queued: list[JobStatus], running: list[JobStatus]) -> dict[str, Any]:
        now = self._clock()
        counts = {state: 0 for state in FINAL_STATES}
        for _name, state, _done in self._finished.values():
            counts[state] += 1
        jobs: list[dict[str, Any]] = [
            {"name": s.name, "job_id": s.job_id, "status": s.status.value, "position": None}
            for s in running
        ]
        jobs += [
            {"name": s.name, "job_id": s.job_id, "status": s.status.value, "position": position}
            for position, s in enumerate(queued, start=1)
        ]
        return {
            "schema": SCHEMA,
            "queue_size": len(queued),
            "max_queue_size": self.config.max_pending,
            "queued_count": len(queued),
            "processing_count": len(running),
            "completed_count": counts[JobState.completed],
            "failed_count": counts[JobState.failed],
            "cancelled_count": counts[JobState.cancelled],
            # The oldest job in flight.
            "current_job_id": running[0].job_id if running else None,
            "total_jobs": len(queued) + len(running) + sum(counts.values()),
            "paused": self.state.paused,
            "accepting": self.state.accepting,
            "updated_at": iso(now),
            "heartbeat_at": iso(now),
            "observer": self._observer(),
            "pid": os.getpid(),
            "notes": self.state.notes(),
            "workers": self._workers(),
            "jobs": jobs,
        }

    def _write_queue(self, payload: dict[str, Any]) -> None:
        try:
            fsops.write_json_atomic(self.layout.queue_json, payload)
        except OSError as e:
            self._write_failed(e)

    def sweep(self) -> int:
        """Remove status files of jobs finished longer ago than the retention time."""
        cutoff = self._clock() - self.config.status_retention_seconds
        removed = 0
        with self._lock:
            expired = [
                (job_id, name)
                for job_id, (name, _state, done) in self._finished.items()
                if done <= cutoff
            ]
            for job_id, _name in expired:
                del self._finished[job_id]
        for job_id, name in expired:
            path = self.layout.status_path(name)
            with self._io:
                current = read_status(path)
                # Only remove the file if it is still this job's (a retry rewrites it).
                if current is not None and current.job_id == job_id:
                    fsops.remove(path)
                    fsops.prune_empty_dirs(path.parent, self.layout.outbox)
                    removed += 1
        return removed


class Publisher:
    """A thread that publishes the board when it changed (at most every PUBLISH_MIN_SECONDS)
    and at least every HEARTBEAT_SECONDS, so queue.json's heartbeat never stops."""

    def __init__(self, board: Board, *, beat: Callable[[], object] = lambda: None) -> None:
        self.board = board
        self.beat = beat  # extra work with each heartbeat (retention sweep)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hotfolder-publisher")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.board.changed.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        next_beat = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if now >= next_beat:
                    next_beat = now + HEARTBEAT_SECONDS
                    self.beat()
                self.board.publish()
            except Exception:
                log.exception("publishing the queue failed; trying again")
            self.board.changed.wait(timeout=max(0.0, next_beat - time.monotonic()))
            self._stop.wait(PUBLISH_MIN_SECONDS)
