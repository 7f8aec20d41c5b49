"""The `queued` status files a batch of admissions writes with its manifests (batch.py).

Each says the place and wait a publish would give the job now (`Board.joining`), so a
station reads its job queued the moment the job is, and the publisher has none of a
burst's files to write (issue 14). Once the batch is on disk, the board is told which jobs
joined and which of their files read so; the dispatcher is woken.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hotfolder import fsops
from hotfolder.jobstatus import JobStatus
from hotfolder.spool import Manifest
from hotfolder.status import Board


class Showing:
    """One batch's status files: `files` before it is written, `joined` once it is."""

    def __init__(self, board: Board, on_queued: Callable[[], None]) -> None:
        self.board = board
        self.on_queued = on_queued
        self._statuses: dict[str, JobStatus] = {}

    def files(self, manifests: list[Manifest]) -> list[tuple[Path, bytes]]:
        """Each job's status file (path, bytes), in the order of `manifests`."""
        self._statuses.update((s.job_id, s) for s in self.board.joining(manifests))
        return [
            (self.board.layout.status_path(m.name), fsops.json_bytes(self._status(m).to_json()))
            for m in manifests
        ]

    def joined(self, written: list[Manifest], in_place: set[str]) -> None:
        """The jobs `written` joined the queue; those named `in_place` have their file (the
        caller holds the board's write order: `Board.writing`)."""
        statuses = [self._status(manifest) for manifest in written]
        for status in statuses:
            if status.name in in_place:  # else the publisher writes it
                self.board.files.wrote(status)
        self.board.queued_many(written, statuses=statuses)
        if written:
            self.on_queued()

    def _status(self, manifest: Manifest) -> JobStatus:
        return self._statuses[manifest.job_id]
