"""Finished jobs whose status files are still in outbox/: the counts queue.json shows, the
last ones the page shows (with their thumbnails and what to do about a failure), and which
files leave at retention.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hotfolder import fsops, thumbs
from hotfolder.jobstatus import JobStatus, parse_iso, read_status
from hotfolder.layout import Layout
from hotfolder.spool import FINAL_STATES, JobState

# The page shows this many finished jobs, and as many failures.
SHOWN = 50


@dataclass(frozen=True)
class Finished:
    """A job (or a rejected drop) in a final state."""

    status: JobStatus
    done: float  # wall clock
    details: str | None = None  # what a person can do about a failure (the reason file's body)
    thumbs: tuple[bool, bool] = (False, False)  # the before and after thumbnails exist
    seconds: float | None = None  # how long it was processing, when this run saw it start
    rejected: bool = False  # refused at intake: never queued

    @property
    def job_id(self) -> str:
        return self.status.job_id


def reason_details(path: Path) -> str | None:
    """The part of a reason file a person acts on: between the first line and `Files:`."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return None
    body = []
    for line in lines[1:]:
        if line.startswith(("Files: ", "Written by hotfolder")):
            break
        body.append(line)
    text = "\n".join(body).strip()
    return text or None


class Recent:
    """Not thread-safe: the board calls it under its lock."""

    def __init__(self, layout: Layout, clock: Callable[[], float]) -> None:
        self.layout = layout
        self.clock = clock
        self._finished: dict[str, Finished] = {}  # by job id, oldest first

    def add(self, finished: Finished) -> None:
        self._finished.pop(finished.job_id, None)
        self._finished[finished.job_id] = finished

    def drop(self, job_id: str) -> None:
        """The job is back in the queue (retry, put back)."""
        self._finished.pop(job_id, None)

    def counts(self) -> dict[JobState, int]:
        counts = dict.fromkeys(FINAL_STATES, 0)
        for finished in self._finished.values():
            counts[finished.status.status] += 1
        return counts

    def _newest(self) -> Iterator[Finished]:
        return reversed(self._finished.values())

    def latest(self, limit: int = SHOWN) -> list[Finished]:
        """The newest completed or cancelled jobs first (failures: see `failures`)."""
        found: list[Finished] = []
        for finished in self._newest():
            if len(found) == limit:
                break
            if finished.status.status != JobState.failed:
                found.append(finished)
        return found

    def failures(self, limit: int = SHOWN) -> list[Finished]:
        """The newest failed jobs first."""
        found: list[Finished] = []
        for finished in self._newest():
            if len(found) == limit:
                break
            if finished.status.status == JobState.failed:
                found.append(finished)
        return found

    def expire(self, cutoff: float) -> list[Finished]:
        """Forget and return the jobs finished at or before `cutoff` (wall clock)."""
        expired = [f for f in self._finished.values() if f.done <= cutoff]
        for finished in expired:
            del self._finished[finished.job_id]
        return expired

    def load(self) -> dict[str, JobStatus]:
        """Read the status files in outbox/: finished ones are counted; drops that were still
        waiting when the service stopped are returned, by their source without extension."""
        waiting: dict[str, JobStatus] = {}
        found: list[Finished] = []
        if not self.layout.outbox.is_dir():
            return waiting
        for dirpath, dirs, files in os.walk(self.layout.outbox):
            dirs[:] = [d for d in dirs if not d.startswith(".")]  # .thumbs/
            for file_name in files:
                if not file_name.endswith(".status.json") or fsops.is_temp_name(file_name):
                    continue
                status = read_status(Path(dirpath) / file_name)
                if status is None:
                    continue
                if status.status == JobState.waiting and status.source:
                    waiting[os.path.splitext(status.source)[0]] = status
                elif status.status in FINAL_STATES:
                    done = parse_iso(status.completed_at) or self.clock()
                    found.append(Finished(status=status, done=done))
        found.sort(key=lambda f: (f.done, f.job_id))
        for finished in found:
            self.add(finished)
        self._describe_shown()
        return waiting

    def _describe_shown(self) -> None:
        """After a restart: thumbnails and reasons of what the page shows, read once."""
        shown = {f.job_id for f in self.latest()} | {f.job_id for f in self.failures()}
        for job_id in shown:
            finished = self._finished[job_id]
            name = finished.status.name
            details = None
            if finished.status.status == JobState.failed:
                details = reason_details(self.layout.reason_path(name))
            self._finished[job_id] = Finished(
                status=finished.status,
                done=finished.done,
                details=details,
                thumbs=thumbs.present(self.layout, name),
            )
