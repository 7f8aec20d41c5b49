"""The status files and queue.json as the board last wrote them, so that a publish writes
only what a station would see change, and a full or read-only outbox/ is said, not fatal."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Collection
from typing import Any

from hotfolder import fsops
from hotfolder.jobstatus import JobStatus
from hotfolder.layout import Layout
from hotfolder.spool import JobState
from hotfolder.state import ServiceState

log = logging.getLogger(__name__)

Due = list[tuple[JobStatus, dict[str, Any]]]  # statuses to write, with what each file will read


class Written:
    def __init__(self, layout: Layout, state: ServiceState, changed: threading.Event) -> None:
        self.layout = layout
        self.state = state
        self.changed = changed  # set to come back: a write failed, or a position is stale
        self._data: dict[str, dict[str, Any]] = {}
        self._stamps: dict[str, int] = {}  # job id -> when its file was last written (a count)
        self._count = itertools.count()

    def forget(self, job_id: str) -> None:
        self._data.pop(job_id, None)
        self._stamps.pop(job_id, None)

    def stamp(self) -> int:
        """A stamp later than every file's written so far (see `written_at`)."""
        return next(self._count)

    def written_at(self, status: JobStatus) -> int:
        """When this job's file was last written (-1: never): the longest unwritten go first."""
        return self._stamps.get(status.job_id, -1)

    def moved_only(self, status: JobStatus) -> bool:
        """Whether its file reads this state and detail already: only the position or wait moved."""
        written = self._data.get(status.job_id)
        return written is not None and (written.get("status"), written.get("detail")) == (
            status.status.value,
            status.detail,
        )

    def write(self, status: JobStatus, *, must: bool = False) -> None:
        """Write one status file unless it reads so already; the caller holds the board's `_io`.
        `must`: a refusing disk raises (the caller keeps the job and tries again)."""
        data = status.to_json()
        if self._data.get(status.job_id) == data or self._behind(status):
            return
        try:
            fsops.write_json_atomic(self.layout.status_path(status.name), data)
        except OSError as e:
            if must:
                raise
            # A full or read-only outbox: keep going, say so, and write it again next time.
            self._failed(e)
            return
        self._data[status.job_id] = data
        self._stamps[status.job_id] = next(self._count)
        self.state.note("outbox", None)

    def write_batch(
        self, statuses: list[JobStatus], *, io: threading.Lock, closed: Collection[str]
    ) -> None:
        """Write status files as one batch (outbox/ fsynced once). The slow part runs before
        `io` (the board's write order) is taken; under it, a job whose file was written by
        someone else meanwhile keeps what they wrote: its final status (the job is in
        `closed`: the board adds to it holding `io`) or its admission's (`wrote`)."""
        with io:
            due = self.stale([s for s in statuses if s.job_id not in closed])
            before = {s.job_id: self._data.get(s.job_id) for s, _d in due}

        def moved_on(job_id: str) -> bool:  # under `io`
            return job_id in closed or self._data.get(job_id) is not before[job_id]

        if not due:
            return
        try:
            staged = self.stage(due)
        except OSError:
            for status, _data in due:  # one by one, to say which could not be written
                with io:
                    if not moved_on(status.job_id):
                        self.write(status)
            return
        with io:
            self.commit(staged, due, skip={s.job_id for s, _d in due if moved_on(s.job_id)})

    def wrote(self, status: JobStatus) -> None:
        """Its file reads this status now, put there by another writer (an admission's batch,
        batch.py); the caller holds the board's `io`."""
        self._data[status.job_id] = status.to_json()
        self._stamps[status.job_id] = next(self._count)

    def stale(self, statuses: list[JobStatus]) -> Due:
        """The statuses whose files do not read so yet, with what they will read; never a
        drop's `waiting` over what its admission wrote meanwhile (a publish's view taken
        just before the admission still shows it waiting)."""
        due = [(status, status.to_json()) for status in statuses if not self._behind(status)]
        return [(status, data) for status, data in due if self._data.get(status.job_id) != data]

    def _behind(self, status: JobStatus) -> bool:
        """Whether `status` is a `waiting` the job's file has moved past (waiting only ever
        comes before a job's first other state)."""
        if status.status != JobState.waiting:
            return False
        written = self._data.get(status.job_id)
        return written is not None and written.get("status") != JobState.waiting.value

    def stage(self, due: Due) -> fsops.Staged:
        """Write and fsync a batch under temporary names, the fsyncs issued together (a burst
        of 1,000 drops writes 2,000 status files: one after another, they held queue.json
        back by a second; benchmarks/README.md, issue 14). Raises OSError."""
        files = [(self.layout.status_path(s.name), fsops.json_bytes(d)) for s, d in due]
        return fsops.stage(files)

    def commit(self, staged: fsops.Staged, due: Due, *, skip: Collection[str]) -> None:
        """Put a staged batch in place (outbox/ fsynced once), except the jobs in `skip` (by
        id); the caller holds the board's `_io`."""
        try:
            staged.commit(keep=lambda index: due[index][0].job_id not in skip)
        except OSError as e:
            self._failed(e)
            return
        for status, data in due:
            if status.job_id not in skip:
                self._data[status.job_id] = data
                self._stamps[status.job_id] = next(self._count)
        self.state.note("outbox", None)

    def queue(self, payload: dict[str, Any]) -> None:
        try:
            fsops.write_json_atomic(self.layout.queue_json, payload)
        except OSError as e:
            self._failed(e)

    def due(self, status: JobStatus, refresh: bool) -> bool:
        """Whether a status file needs writing now: a new state or detail at once, a new
        position or wait at the next refresh (a long queue would rewrite every file on
        every claim otherwise)."""
        if not self.moved_only(status):
            return True
        if status.position is None:
            return False
        if not refresh:
            self.changed.set()  # a position is stale: come back within a second
        return refresh

    def _failed(self, error: OSError) -> None:
        self.changed.set()
        note = f"cannot write to outbox/: {error.strerror or error}"
        if self.state.note("outbox", note):
            log.error("%s; status files are stale until it is writable again", note)
