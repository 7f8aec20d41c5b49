"""What stations read: one status JSON per job and `outbox/queue.json`, always whole.

The Board holds the live view (queued and processing jobs, recently finished
counts) and writes a job's status file whenever anything a station can see in
it changes: state, position, estimated wait, progress.
"""

from __future__ import annotations

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
from hotfolder.spool import FINAL_STATES, JobState, Manifest

log = logging.getLogger(__name__)

SCHEMA = 1
HEARTBEAT_SECONDS = 5.0
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


class Board:
    """The live view of the queue, published as status files and queue.json."""

    def __init__(
        self,
        layout: Layout,
        config: Config,
        *,
        observer: Callable[[], str] = lambda: "native",
        clock: Callable[[], float] = time.time,
        history: Recorder | None = None,
    ) -> None:
        self.layout = layout
        self.config = config
        self.estimator = Estimator(config)
        self.history = history
        self._observer = observer
        self._clock = clock
        self._lock = threading.RLock()
        self._active: dict[str, tuple[tuple[int, int, int], JobStatus, str]] = {}
        self._written: dict[str, dict[str, Any]] = {}
        self._finished: dict[str, tuple[str, JobState, float]] = {}
        self._started_mono: dict[str, float] = {}
        self._dirty = True
        self._positions_at = 0.0
        self._positions_every = POSITION_REFRESH_SECONDS
        self.paused = False
        self.accepting = True  # False while admission waits (e.g. for disk space)
        self.notes: dict[str, str] = {}  # e.g. {"intake": "inbox/ is unreachable"}

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

    # --- state changes ---

    def queued(self, manifest: Manifest, detail: str | None = None) -> None:
        with self._lock:
            self._dirty = True
            status = status_from_manifest(manifest, status=JobState.queued, detail=detail)
            self._record(status)
            self._active[manifest.job_id] = (manifest.sort_key, status, manifest.spec["preset"])
            self._finished.pop(manifest.job_id, None)
            self._started_mono.pop(manifest.job_id, None)

    def processing(self, manifest: Manifest, detail: str | None = None) -> None:
        with self._lock:
            self._dirty = True
            status = status_from_manifest(manifest, status=JobState.processing, detail=detail)
            self._record(status)
            self._active[manifest.job_id] = (manifest.sort_key, status, manifest.spec["preset"])
            self._started_mono[manifest.job_id] = time.monotonic()

    def progress(self, job_id: str, step: int, steps: int, detail: str | None = None) -> None:
        with self._lock:
            entry = self._active.get(job_id)
            if entry is None:
                return
            key, status, preset = entry
            status = status.model_copy(
                update={"progress": Progress(step=step, steps=steps), "detail": detail}
            )
            self._active[job_id] = (key, status, preset)
            self._write(status)

    def finished(self, status: JobStatus) -> None:
        """A job (or a rejected drop) reached a final state: write it and count it."""
        with self._lock:
            # Written first: if the disk refuses it, the caller keeps the job and tries again.
            self._write(status, must=True)
            self._written.pop(status.job_id, None)
            self._dirty = True
            entry = self._active.pop(status.job_id, None)
            started = self._started_mono.pop(status.job_id, None)
            if entry is not None and started is not None and status.status == JobState.completed:
                self.estimator.add(entry[2], time.monotonic() - started)
            self._finished[status.job_id] = (status.name, status.status, self._clock())
            self._record(status)

    def _record(self, status: JobStatus) -> None:
        if self.history is None:
            return
        try:
            self.history.record(status)
        except Exception:
            # The history is a convenience; a locked or broken database never stops a job.
            log.exception("could not record %s in the history", status.name)

    # --- publishing ---

    def _write(self, status: JobStatus, *, must: bool = False) -> None:
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
        self.notes.pop("outbox", None)

    def _write_failed(self, error: OSError) -> None:
        self._dirty = True
        note = f"cannot write to outbox/: {error.strerror or error}"
        if self.notes.get("outbox") != note:
            log.error("%s; status files are stale until it is writable again", note)
        self.notes["outbox"] = note

    def publish_if_dirty(self) -> None:
        if self._dirty:
            self.publish()

    def publish(self) -> None:
        """Recompute positions and waits, rewrite what changed, and write queue.json."""
        with self._lock:
            self._dirty = False
            now_mono = time.monotonic()
            queued = sorted(
                (entry for entry in self._active.values() if entry[1].status == JobState.queued),
                key=lambda entry: entry[0],
            )
            wait = 0.0
            for _key, status, preset in self._active.values():
                if status.status == JobState.processing:
                    started = self._started_mono.get(status.job_id, now_mono)
                    wait += max(0.0, self.estimator.seconds(preset) - (now_mono - started))
            # A new state is written at once; a new position or wait at most once a
            # second, so a long queue does not rewrite every file on every claim.
            refresh = now_mono - self._positions_at >= self._positions_every
            stale = False
            for position, (key, status, preset) in enumerate(queued, start=1):
                updated = status.model_copy(
                    update={"position": position, "estimated_wait_seconds": round(wait, 1)}
                )
                self._active[status.job_id] = (key, updated, preset)
                written = self._written.get(status.job_id)
                if refresh or written is None or written.get("status") != updated.status.value:
                    self._write(updated)
                else:
                    stale = True
                wait += self.estimator.seconds(preset)
            if refresh:
                self._positions_at = now_mono
                # One atomic write per queued job: for 1,000 jobs a refresh takes seconds, and
                # every second would leave the worker no time (benchmarks/README.md, burst).
                # Refreshing at most a tenth of the time keeps positions fresh and jobs moving.
                took = time.monotonic() - now_mono
                self._positions_every = max(POSITION_REFRESH_SECONDS, 10 * took)
            if stale:
                self._dirty = True
            for _key, status, _preset in list(self._active.values()):
                if status.status == JobState.processing:
                    self._write(status)
            self._write_queue(queued)

    def _write_queue(self, queued: list[tuple[tuple[int, int, int], JobStatus, str]]) -> None:
        now = self._clock()
        counts = {state: 0 for state in FINAL_STATES}
        for _name, state, _done in self._finished.values():
            counts[state] += 1
        processing = [s for _k, s, _p in self._active.values() if s.status == JobState.processing]
        jobs: list[dict[str, Any]] = [
            {"name": s.name, "job_id": s.job_id, "status": s.status.value, "position": None}
            for s in processing
        ]
        jobs += [
            {
                "name": s.name,
                "job_id": s.job_id,
                "status": s.status.value,
                "position": position,
            }
            for position, (_k, s, _p) in enumerate(queued, start=1)
        ]
        payload: dict[str, Any] = {
            "schema": SCHEMA,
            "queue_size": len(queued),
            "max_queue_size": self.config.max_pending,
            "queued_count": len(queued),
            "processing_count": len(processing),
            "completed_count": counts[JobState.completed],
            "failed_count": counts[JobState.failed],
            "cancelled_count": counts[JobState.cancelled],
            "current_job_id": processing[0].job_id if processing else None,
            "total_jobs": len(queued) + len(processing) + sum(counts.values()),
            "paused": self.paused,
            "accepting": self.accepting,
            "updated_at": iso(now),
            "heartbeat_at": iso(now),
            "observer": self._observer(),
            "pid": os.getpid(),
            "notes": dict(self.notes),
            "jobs": jobs,
        }
        try:
            fsops.write_json_atomic(self.layout.queue_json, payload)
        except OSError as e:
            self._write_failed(e)

    def sweep(self) -> int:
        """Remove status files of jobs finished longer ago than the retention time."""
        cutoff = self._clock() - self.config.status_retention_seconds
        removed = 0
        with self._lock:
            for job_id, (name, _state, done) in list(self._finished.items()):
                if done > cutoff:
                    continue
                path = self.layout.status_path(name)
                current = read_status(path)
                # Only remove the file if it is still this job's (a retry rewrites it).
                if current is not None and current.job_id == job_id:
                    fsops.remove(path)
                    fsops.prune_empty_dirs(path.parent, self.layout.outbox)
                    removed += 1
                del self._finished[job_id]
        return removed
