"""What stations read: one status JSON per job and `outbox/queue.json`, always whole.

The Board holds the live view (waiting drops, queued and processing jobs, recently finished
ones) and writes a job's status file whenever anything a station can see in it changes:
state, position, estimated wait, progress. Each publish also hands a `View` to whoever
renders it otherwise (the page, the metrics: see `publisher`).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from hotfolder import fsops, thumbs
from hotfolder.config import Config
from hotfolder.history import Recorder, record_quietly
from hotfolder.jobstatus import (
    SCHEMA,
    JobStatus,
    Progress,
    Progresses,
    iso,
    parse_iso,
    read_status,
    status_from_manifest,
)
from hotfolder.layout import Layout
from hotfolder.order import QueueOrder
from hotfolder.positions import Drops, Entry, Estimator, Hold, placed
from hotfolder.recent import SHOWN, Finished, Recent
from hotfolder.refresh import Refresh
from hotfolder.spool import JobState, Manifest
from hotfolder.state import ServiceState
from hotfolder.view import View, queue_payload
from hotfolder.written import Written

# Many modules read a job's status through this one.
__all__ = [
    "HEARTBEAT_SECONDS",
    "SCHEMA",
    "Board",
    "JobStatus",
    "Progress",
    "iso",
    "parse_iso",
    "read_status",
    "status_from_manifest",
]

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0


def remove_status(layout: Layout, name: str, job_id: str) -> bool:
    """Remove `name`'s status file if it is still job `job_id`'s; whether it was."""
    path = layout.status_path(name)
    current = read_status(path)
    if current is None or current.job_id != job_id:
        return False
    fsops.remove(path)
    fsops.prune_empty_dirs(path.parent, layout.outbox)
    return True


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
        self._active: dict[str, Entry] = {}
        self.drops = Drops()  # seen, not admitted yet
        self._closed: set[str] = set()  # job ids whose final status is written (or gone)
        self.recent = Recent(layout, clock)
        self._leftovers: dict[str, JobStatus] = {}
        self.progresses = Progresses()
        self.changed = threading.Event()  # set on every change; the publisher waits on it
        self.files = Written(layout, self.state, self.changed)
        self.refresh = Refresh(self.files)  # when moved positions reach the status files
        self.state.watchers.append(self.changed.set)
        # Told of every final state (metrics), on the thread that ended the job.
        self.listeners: list[Callable[[Finished], None]] = []

    @property
    def notes(self) -> dict[str, str]:
        return self.state.notes()

    # --- start-up ---

    def load_finished(self) -> None:
        """Read outbox/: finished jobs for queue.json and the page, and drops that were
        waiting when the service stopped (intake takes them back, see `take_leftovers`)."""
        with self._lock:
            self._leftovers = self.recent.load()

    def take_leftovers(self, *, keep: bool = False) -> dict[str, JobStatus]:
        """Waiting statuses from before a restart, by source without extension (once, unless
        `keep`)."""
        with self._lock:
            leftovers = dict(self._leftovers)
            self._leftovers = self._leftovers if keep else {}
        return leftovers

    # --- state changes (from Jobs and Intake) ---

    def waiting(self, status: JobStatus, hold: Hold | None = None) -> None:
        """A drop seen but not admitted yet, and what it waits for (written by the publisher);
        `hold`: it waits for room in the queue, and will join it there."""
        with self._lock:
            self.drops.see(status, hold)
        self.changed.set()

    def unwaiting(self, status: JobStatus) -> None:
        """A waiting drop left inbox/ before it became a job: its status file goes too."""
        with self._io:
            with self._lock:
                self.drops.forget(status.job_id)
                self._closed.add(status.job_id)
                self.files.forget(status.job_id)
            remove_status(self.layout, status.name, status.job_id)
        self.changed.set()

    def queued(self, manifest: Manifest, detail: str | None = None) -> None:
        self.queued_many([manifest], detail)

    def joining(self, manifests: Sequence[Manifest]) -> list[JobStatus]:
        """The queued statuses these jobs about to be admitted will have, each with the place
        and wait a publish would give it now (their admission writes them: Jobs.write_admitted)."""
        ids = {manifest.job_id for manifest in manifests}
        fresh = [
            Entry(m.sort_key, status_from_manifest(m, status=JobState.queued), m.spec["preset"])
            for m in manifests
        ]
        with self._lock:
            others = [e for e in self._active.values() if e.status.job_id not in ids]
            queued, running = self._arranged(others, fresh)
            now = self._monotonic()
            return placed(self.estimator, queued, running, self._starting(), now, only=ids)

    def _arranged(
        self, entries: list[Entry], joining: Sequence[Entry] = ()
    ) -> tuple[list[Entry], list[Entry]]:
        """The queued jobs among `entries` (and those `joining`) in the order they start, and
        the running ones in the order they started; the caller holds `_lock`."""
        queued = self.order.arrange(
            [*(e for e in entries if e.status.status == JobState.queued), *joining],
            key=lambda e: e.key,
            name=lambda e: e.status.name,
        )
        running = sorted(
            (e for e in entries if e.status.status == JobState.processing),
            key=lambda e: (e.status.started_at or "", e.key),
        )
        return queued, running

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the board's write order (a batch of admissions puts status files in place)."""
        with self._io:
            yield

    def queued_many(
        self,
        manifests: Sequence[Manifest],
        detail: str | None = None,
        *,
        statuses: Sequence[JobStatus] = (),
    ) -> None:
        """Jobs joined the queue (a batch of admissions: one look at the lock, one history
        transaction), with these `statuses` if given (showing.py), one per manifest."""
        if not statuses:
            statuses = [
                status_from_manifest(manifest, status=JobState.queued, detail=detail)
                for manifest in manifests
            ]
        with self._lock:
            for manifest, status in zip(manifests, statuses, strict=True):
                job_id = manifest.job_id
                self._active[job_id] = Entry(manifest.sort_key, status, manifest.spec["preset"])
                self.drops.forget(job_id)
                self.recent.drop(job_id)
                self._closed.discard(job_id)
        self.progresses.forget(*(manifest.job_id for manifest in manifests))
        record_quietly(self.history, statuses)
        self.changed.set()

    def processing(self, manifest: Manifest, detail: str | None = None) -> None:
        status = status_from_manifest(manifest, status=JobState.processing, detail=detail)
        with self._lock:
            entry = Entry(manifest.sort_key, status, manifest.spec["preset"])
            entry.started = self._monotonic()
            self._active[manifest.job_id] = entry
        self.progresses.forget(manifest.job_id)
        record_quietly(self.history, [status])
        self.changed.set()

    def progress(self, job_id: str, step: int, steps: int) -> None:
        self.progresses.set(job_id, step, steps)
        self.changed.set()

    @contextlib.contextmanager
    def closing(
        self, status: JobStatus, *, details: str | None = None, rejected: bool = False
    ) -> Iterator[tuple[Path, bytes]]:
        """A job (or a rejected drop) reaches a final state: yields its status file's path and
        bytes, which the caller puts in place (with the other steps of the job's ending,
        `Spool.finish`) before the block ends; counted only if it ends without an error. The
        board's write order is held throughout, so no publish of an older state can overwrite
        it. `details`: what a person can do about a failure (the reason file says it too)."""
        with self._io:
            yield self.layout.status_path(status.name), fsops.json_bytes(status.to_json())
            self.state.note("outbox", None)
            pictures = (False, False) if rejected else thumbs.present(self.layout, status.name)
            with self._lock:
                self._closed.add(status.job_id)
                self.files.forget(status.job_id)
                self.drops.forget(status.job_id)
                entry = self._active.pop(status.job_id, None)
                seconds = None
                if entry is not None and entry.started is not None:
                    seconds = self._monotonic() - entry.started
                    if status.status == JobState.completed:
                        self.estimator.add(entry.preset, seconds)
                ending = Finished(status, self._clock(), details, pictures, seconds, rejected)
                self.recent.add(ending)
        self.progresses.forget(status.job_id)
        record_quietly(self.history, [status])
        for listener in self.listeners:
            listener(ending)
        self.changed.set()

    # --- publishing ---

    def publish(self, *, refresh: bool = False) -> View:
        """Recompute positions and waits, rewrite what changed, and write queue.json.
        `refresh`: rewrite every queued job's position and wait now (the last publish).

        New states first, then queue.json, then (refresh.py) moved positions: a station
        sees a job queued at once, however many positions a burst of claims has moved."""
        self.changed.clear()
        if refresh:
            self.refresh.restart()
        writes, view, refreshed = self._snapshot()
        # A running job's progress is written at once; queued and held ones' places paced.
        moved = [s for s in writes if s.position is not None and self.files.moved_only(s)]
        fresh = [s for s in writes if s.position is None or not self.files.moved_only(s)]
        for start in range(0, len(fresh), fsops.WRITE_BATCH_FILES):
            self._write_batch(fresh[start : start + fsops.WRITE_BATCH_FILES])
        self.files.queue(queue_payload(view))
        if refreshed:
            self.refresh.write(moved, self._write_batch, whole=refresh)
        return view

    def _write_batch(self, statuses: list[JobStatus]) -> None:
        self.files.write_batch(statuses, io=self._io, closed=self._closed)

    def _snapshot(self) -> tuple[list[JobStatus], View, bool]:
        """Under the lock, in memory only: the statuses to write and the view to show."""
        with self._lock:
            now_mono = self._monotonic()
            queued, running = self._arranged(list(self._active.values()))
            # A new state is written at once; a new position or wait at most once a
            # second, so a long queue does not rewrite every file on every claim.
            refresh = self.refresh.due(now_mono)
            writes = self._place(queued, running, now_mono, refresh)
            if refresh:
                self.refresh.begin(now_mono)
            for entry in running:
                entry.status = entry.status.model_copy(
                    update={"progress": self.progresses.of(entry.status.job_id)}
                )
                writes.append(entry.status)
            writes += self.drops.place(
                self.order,
                self.estimator,
                queued,
                running,
                slots=self._starting(),
                now=now_mono,
                files=self.files,
                refresh=refresh,
                caps=(self.config.max_pending, self.config.per_station.max_pending),
            )
            waiting = list(self.drops.statuses.values())
            view = View(
                at=self._clock(),
                state=self.state.shown,
                paused=self.state.paused,
                accepting=self.state.accepting,
                observer=self._observer(),
                max_queue_size=self.config.max_pending,
                notes=self.state.notes(),
                workers=self.progresses.on_workers(self._workers()),
                running=[e.status for e in running],
                queued=[e.status for e in queued],
                waiting=waiting,
                recent=self.recent.latest(SHOWN),
                failures=self.recent.failures(SHOWN),
                counts=self.recent.counts(),
            )
        return writes, view, refresh

    def _place(
        self, queued: list[Entry], running: list[Entry], now: float, refresh: bool
    ) -> list[JobStatus]:
        """Give each queued job its position and wait; the ones whose file needs writing."""
        statuses = placed(self.estimator, queued, running, self._starting(), now)
        for entry, status in zip(queued, statuses, strict=True):
            entry.status = status
        return [s for s in statuses if self.files.due(s, refresh)]

    def _starting(self) -> int:
        """How many jobs run at once; 0 while none will start (paused, stopping, stopped)."""
        return max(1, self._slots()) if self.state.starts_jobs else 0

    def sweep(self) -> int:
        """Remove status files (and thumbnails) of jobs finished longer ago than the
        retention time."""
        cutoff = self._clock() - self.config.status_retention_seconds
        with self._lock:
            expired = self.recent.expire(cutoff)
        removed = 0
        for finished in expired:
            name = finished.status.name
            with self._io:
                # Only if they are still this job's files (a retry rewrites them).
                if remove_status(self.layout, name, finished.job_id):
                    if not finished.rejected:
                        thumbs.remove(self.layout, name)
                    removed += 1
        return removed
