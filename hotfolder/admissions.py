"""Intake's admissions of one tick, written to disk in batches (benchmarks/README.md, burst).

A pair admitted is counted against the caps at once (`Jobs.admit(later=True)`), and written
with the others: every manifest, then every dropped file, each folder fsynced once per batch
instead of once per file. Only once its job is on disk are the drop's files let go; a drop
whose job did not reach the disk stays tracked and is tried again next tick.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from hotfolder.jobs import Jobs
from hotfolder.spool import Copies, Manifest

log = logging.getLogger("hotfolder.intake")

# A batch is written once it holds this many (and at the end of each tick's decisions): the
# first of a tick soon, so that the first jobs of a burst start at once; each full batch
# doubles the next, up to the most, so that a burst waits on the disk a few times only.
ADMIT_BATCH_FIRST: Final = 32
ADMIT_BATCH_MOST: Final = 256


class Admissions:
    def __init__(
        self, jobs: Jobs, *, forget: Callable[[Path], None], on_admit: Callable[[], None]
    ) -> None:
        self.jobs = jobs
        self.forget = forget  # intake stops tracking a file
        self.on_admit = on_admit  # jobs joined the queue (wakes the dispatcher)
        self._batch: list[tuple[Manifest, tuple[Path, ...], Callable[[], None]]] = []
        self._size = ADMIT_BATCH_FIRST

    def add(
        self,
        manifest: Manifest,
        files: tuple[Path, ...],
        copies: Copies,
        *,
        then: Callable[[], None],
    ) -> None:
        """Admit a job (with its copies of its reference images); `then` runs once it is on disk."""
        self.jobs.admit(manifest, copies, later=True)
        self._batch.append((manifest, files, then))
        if len(self._batch) >= self._size:
            self.write()

    def write(self) -> bool:
        """Write the admissions so far as one batch; whether any job joined the queue."""
        batch, self._batch = self._batch, []
        # A full batch (a burst): the next may be larger; the tick's last: the next tick's
        # first is small again.
        full = len(batch) >= self._size
        self._size = min(2 * self._size, ADMIT_BATCH_MOST) if full else ADMIT_BATCH_FIRST
        if not batch:
            return False
        written, error = self.jobs.write_admitted()
        names = {manifest.name for manifest in written}
        for manifest, files, then in batch:
            if manifest.name in names:
                for path in files:
                    self.forget(path)
                then()
                log.info(
                    "admitted %s (%s) from %s", manifest.name, manifest.job_id, manifest.source
                )
        if error is not None:
            log.error(
                "cannot admit %d drop(s) yet (%s); trying again", len(batch) - len(names), error
            )
        if names:
            self.on_admit()
        return bool(names)
