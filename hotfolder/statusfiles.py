"""The status files in outbox/ as the board last wrote them: one at a time, or a batch."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from typing import Any

from hotfolder import fsops
from hotfolder.jobstatus import JobStatus
from hotfolder.layout import Layout
from hotfolder.state import ServiceState

log = logging.getLogger(__name__)

Due = list[tuple[JobStatus, dict[str, Any]]]  # statuses to write, with what each file will say


class StatusFiles:
    """Writes status files and queue.json, remembering what each job's file says so an
    unchanged status is not written again. The board decides the order (its `_io` lock)."""

    def __init__(self, layout: Layout, state: ServiceState, changed: threading.Event) -> None:
        self.layout = layout
        self.state = state
        self.changed = changed  # set when a write failed: the publisher tries again
        self._written: dict[str, dict[str, Any]] = {}

    def said(self, job_id: str) -> dict[str, Any] | None:
        """What the job's status file says (as this service last wrote it)."""
        return self._written.get(job_id)

    def forget(self, job_id: str) -> None:
        self._written.pop(job_id, None)

    def write(self, status: JobStatus, *, must: bool = False) -> None:
        """Write one status file (`must`: raise if the disk refuses, else note it)."""
        data = status.to_json()
        if self._written.get(status.job_id) == data:
            return
        try:
            fsops.write_json_atomic(self.layout.status_path(status.name), data)
        except OSError as e:
            if must:
                raise
            # A full or read-only outbox: keep going, say so, and write it again next time.
            self.failed(e)
            return
        self._written[status.job_id] = data
        self.state.note("outbox", None)

    def stale(self, statuses: list[JobStatus]) -> Due:
        """The statuses whose files do not say this yet."""
        due = [(status, status.to_json()) for status in statuses]
        return [(status, data) for status, data in due if self._written.get(status.job_id) != data]

    def stage(self, due: Due) -> fsops.Staged:
        """Write and fsync a batch under temporary names, one after another: the publisher
        works in the background, and a burst of commits from it would hold up the workers'
        own writes (benchmarks/README.md, issue 14). Raises OSError."""
        files = [(self.layout.status_path(s.name), fsops.json_bytes(d)) for s, d in due]
        return fsops.stage(files, together=False)

    def commit(self, staged: fsops.Staged, due: Due, *, skip: Collection[str]) -> None:
        """Put a staged batch in place, except the jobs in `skip` (by id)."""
        try:
            staged.commit(keep=lambda index: due[index][0].job_id not in skip)
        except OSError as e:
            self.failed(e)
            return
        for status, data in due:
            if status.job_id not in skip:
                self._written[status.job_id] = data
        self.state.note("outbox", None)

    def write_queue(self, payload: dict[str, Any]) -> None:
        try:
            fsops.write_json_atomic(self.layout.queue_json, payload)
        except OSError as e:
            self.failed(e)

    def failed(self, error: OSError) -> None:
        self.changed.set()
        note = f"cannot write to outbox/: {error.strerror or error}"
        if self.state.note("outbox", note):
            log.error("%s; status files are stale until it is writable again", note)
