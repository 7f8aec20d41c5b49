"""Admissions written to disk as one batch (benchmarks/README.md, issue 14).

Intake admits a pair `later`: the job is counted against the caps and its name is taken at
once, but nothing else sees it; `write` then puts a batch of them on disk in the order a
single admission takes (the reference copies, every manifest, then every dropped file), with
the file fsyncs issued together and each folder fsynced once. A crash in between is finished
by `Spool.load`, or by admitting again, exactly as for one job.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from hotfolder import fsops
from hotfolder.order import station_of

if TYPE_CHECKING:
    from hotfolder.spool import Copies, Manifest, Spool


class Batch:
    """The jobs admitted `later` and not on disk yet. Only intake's thread adds and writes;
    the counts are read from any thread without a lock."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._jobs: dict[str, tuple[Manifest, Copies]] = {}

    def __len__(self) -> int:
        return len(self._jobs)

    def names(self) -> set[str]:
        """Taken, though nothing is on disk yet."""
        return set(self._jobs)

    def in_station(self, station: str) -> int:
        return sum(1 for name in self._jobs if station_of(name) == station)

    def add(self, manifest: Manifest, copies: Copies) -> None:
        self._jobs[manifest.name] = (manifest, copies)

    def write(
        self, joined: Callable[[list[Manifest]], None]
    ) -> tuple[list[Manifest], OSError | None]:
        """Put the batch on disk; what is written joins the queue and is passed to `joined`
        under the spool's lock (so no claim comes between). The error, if any, is returned.

        One set of steps (`fsops.Steps`): every copy and manifest written and fsynced
        together, before the lock (the workers hold it while they write; no one else knows
        of these jobs yet); under it, copies then manifests put in place, then the dropped
        files moved, then each folder fsynced once."""
        entries = list(self._jobs.values())
        if not entries:
            return [], None
        spool = self.spool
        pending = spool.layout.pending
        written: list[Manifest] = []
        steps = fsops.Steps()
        for manifest, copies in entries:  # a manifest on disk always has its copies
            for file_name, data in copies.items():
                steps.write(spool.path_in(pending, manifest, file_name), data)
        for manifest, _copies in entries:
            steps.write(spool.manifest_path(pending, manifest.name), _json(manifest))
            steps.call(partial(written.append, manifest))
        error: OSError | None = None
        try:
            steps.stage()
        except OSError as e:
            error = e
        with spool.lock:
            if error is None:
                for manifest, _copies in entries:
                    for source, target in spool.arriving(manifest):
                        # A drop deleted since it was read leaves its job without the file
                        # (it fails at its turn, as a job whose file vanished from pending/).
                        steps.move(source, target, if_present=True)
                try:
                    steps.commit()
                except OSError as e:
                    error = e
                    self._follow(written)
            for manifest in written:
                spool.enqueue(manifest)
            self._jobs = {}
            joined(written)
        return written, error

    def _follow(self, written: list[Manifest]) -> None:
        """After a refused step: the files of the jobs whose manifest is in place follow it
        now (or at the claim or the next start, `gather`), so intake never sees them again."""
        pending = self.spool.layout.pending
        with contextlib.suppress(OSError):
            fsops.move_many([m for job in written for m in self.spool.gathering(job, pending)])


def _json(manifest: Manifest) -> bytes:
    return manifest.model_dump_json(indent=2).encode()
