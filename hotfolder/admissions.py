"""Intake's admissions of one tick, written to disk in batches (benchmarks/README.md, burst).

A pair admitted is counted against the caps at once (`Jobs.admit(later=True)`), and written
with the others: every manifest, then every dropped file, each folder fsynced once per batch
instead of once per file. Only once its job is on disk are the drop's files let go; a drop
whose job did not reach the disk stays tracked and is tried again next tick.

A full batch is written on a thread of its own while intake goes on deciding the next drops
(one batch at a time, in order); the tick's last batch is waited for before the tick ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Final

from hotfolder.jobs import Jobs
from hotfolder.spool import Copies, Manifest
from hotfolder.threads import DaemonPool

log = logging.getLogger("hotfolder.intake")

# A batch is written once it holds this many (and at the end of each tick's decisions): the
# first of a tick soon, so that the first jobs of a burst start at once; each full batch
# doubles the next, up to the most, so that a burst waits on the disk a few times only.
ADMIT_BATCH_FIRST: Final = 32
ADMIT_BATCH_MOST: Final = 256

# A job admitted, the drop's files, and what to do once it is on disk.
Admitted = tuple[Manifest, tuple[Path, ...], Callable[[], None]]
Written = tuple[list[Manifest], OSError | None]

# Writes a full batch while intake decides the next drops: a batch's wait on the disk (40 ms
# for 64 jobs, in a burst) no longer stops the decisions. Every caller waits for its own.
_writer = DaemonPool(1, name="hotfolder-admit")


class Admissions:
    def __init__(
        self, jobs: Jobs, *, forget: Callable[[Path], None], on_admit: Callable[[], None]
    ) -> None:
        self.jobs = jobs
        self.forget = forget  # intake stops tracking a file
        self.on_admit = on_admit  # jobs joined the queue (wakes the dispatcher)
        self._batch: list[Admitted] = []
        self._size = ADMIT_BATCH_FIRST
        self._flight: tuple[list[Admitted], Future[Written]] | None = None  # being written

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
            self.write(wait=False)

    def write(self, *, wait: bool = True) -> bool:
        """Write the admissions so far as one batch; whether any job joined the queue (in the
        batch before, and in this one unless `wait=False`: then it is written on the writer's
        thread while intake decides the next drops, and waited for by the next `write`)."""
        admitted = self._collect()
        batch, self._batch = self._batch, []
        # A full batch (a burst): the next may be larger; the tick's last: the next tick's
        # first is small again.
        full = len(batch) >= self._size
        self._size = min(2 * self._size, ADMIT_BATCH_MOST) if full else ADMIT_BATCH_FIRST
        if batch:
            names = [manifest.name for manifest, _files, _then in batch]
            write = partial(self.jobs.write_admitted, names)
            if wait:
                # Written on this thread: a hand-over to the writer's would cost a lone
                # drop's admission the wake-up of another thread.
                done: Future[Written] = Future()
                done.set_result(write())
                self._flight = (batch, done)
            else:
                self._flight = (batch, _writer.submit(write))
        if wait:
            admitted = self._collect() or admitted
        return admitted

    def _collect(self) -> bool:
        """Wait for the batch being written, then let its drops go; whether any job joined."""
        if self._flight is None:
            return False
        batch, future = self._flight
        self._flight = None
        written, error = future.result()
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
