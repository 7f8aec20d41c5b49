"""Admissions written to disk as one batch (benchmarks/README.md, issue 14).

Intake admits a pair `later`: the job is counted against the caps and its name is taken at
once, but nothing else sees it; `write` then puts a batch of them on disk in the order a
single admission takes (the reference copies, every manifest, then every dropped file), with
the file fsyncs issued together and each folder fsynced once. A crash in between is finished
by `Spool.load`, or by admitting again, exactly as for one job.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from hotfolder import fsops
from hotfolder.order import station_of

if TYPE_CHECKING:
    from hotfolder.spool import Copies, Manifest, Spool


# Told of the jobs written, and of those of them whose status file is in place.
Joined = Callable[[list["Manifest"], set[str]], None]
# Each job's status file (path, bytes), in the order of the jobs given.
Shown = Callable[[list["Manifest"]], list[tuple[Path, bytes]]]


class Batch:
    """The jobs admitted `later` and not on disk yet, until they are (or could not be). Intake's
    thread adds them while the batch before is written on another (admissions.py)."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._jobs: dict[str, tuple[Manifest, Copies]] = {}
        self._lock = threading.Lock()  # taken after the spool's, never before

    def __len__(self) -> int:
        return len(self._jobs)

    def names(self) -> set[str]:
        """Taken, though nothing is on disk yet."""
        with self._lock:
            return set(self._jobs)

    def in_station(self, station: str) -> int:
        return sum(1 for name in self.names() if station_of(name) == station)

    def add(self, manifest: Manifest, copies: Copies) -> None:
        with self._lock:
            self._jobs[manifest.name] = (manifest, copies)

    def write(
        self,
        joined: Joined,
        names: Collection[str] | None = None,
        *,
        shown: Shown | None = None,
        hold: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    ) -> tuple[list[Manifest], OSError | None]:
        """Put the batch (the jobs of these `names`, or all) on disk; what is written joins the
        queue and is passed to `joined`, with the names of the jobs whose status file is in
        place, under the spool's lock (so no claim comes between) and `hold` (the board's
        write order). The error, if any, is returned; either way the batch's jobs leave it.

        One set of steps (`fsops.Steps`): every copy, manifest and status file (`shown`: each
        job's, in order) written and fsynced together, before the lock (the workers hold it
        while they write; no one else knows of these jobs yet); under it, copies, then
        manifests, then status files put in place, then the dropped files moved, then each
        folder fsynced once, after the lock. A job's status file says queued only once its
        manifest is in place, and a station reads it with the same wait on the disk."""
        with self._lock:
            if names is None:
                entries = list(self._jobs.values())
            else:
                entries = [self._jobs[name] for name in names if name in self._jobs]
        if not entries:
            return [], None
        spool = self.spool
        steps, written, in_place = _steps(spool, entries, shown)
        error: OSError | None = None
        try:
            steps.stage()
        except OSError as e:
            error = e
        try:
            with spool.lock, hold():
                if error is None:
                    try:
                        steps.commit()
                    except OSError as e:
                        error = e
                        self._follow(written)
                for manifest in written:
                    spool.enqueue(manifest)
                with self._lock:
                    for manifest, _copies in entries:
                        self._jobs.pop(manifest.name, None)
                joined(written, in_place)
        finally:
            # The jobs may be claimed meanwhile (a claim is renames, never waited on); the
            # batch is done, and its drops let go, only once these are on disk.
            fsops.in_parallel(fsops.fsync_dir, steps.folders)
        return written, error

    def _follow(self, written: list[Manifest]) -> None:
        """After a refused step: the files of the jobs whose manifest is in place follow it
        now (or at the claim or the next start, `gather`), so intake never sees them again."""
        pending = self.spool.layout.pending
        with contextlib.suppress(OSError):
            fsops.move_many([m for job in written for m in self.spool.gathering(job, pending)])


def _steps(
    spool: Spool, entries: list[tuple[Manifest, Copies]], shown: Shown | None
) -> tuple[fsops.Steps, list[Manifest], set[str]]:
    """A batch's steps, in the order a single admission takes them: copies, manifests, status
    files, the drops' files moved; with the jobs whose manifest, and whose status file, is
    in place as they are taken."""
    pending = spool.layout.pending
    written: list[Manifest] = []
    in_place: set[str] = set()
    steps = fsops.Steps(durable=False)  # its folders are fsynced once the lock is let go
    for manifest, copies in entries:  # a manifest on disk always has its copies
        for file_name, data in copies.items():
            steps.write(spool.path_in(pending, manifest, file_name), data)
    for manifest, _copies in entries:
        steps.write(spool.manifest_path(pending, manifest.name), _json(manifest))
        steps.call(partial(written.append, manifest))
    if shown is not None:
        files = shown([manifest for manifest, _copies in entries])
        for (manifest, _copies), (path, data) in zip(entries, files, strict=True):
            # A status file outbox/ refuses never holds up the job: the publisher writes it
            # later, and says what is wrong with outbox/ meanwhile.
            index = steps.write(path, data, optional=True)
            steps.call(partial(_shown, steps, index, in_place, manifest.name))
    for manifest, _copies in entries:
        for source, target in _arriving(spool, manifest):
            # A drop deleted since it was read leaves its job without the file (it fails at
            # its turn, as a job whose file vanished from pending/).
            steps.move(source, target, if_present=True)
    return steps, written, in_place


def _arriving(spool: Spool, manifest: Manifest) -> list[tuple[Path, Path]]:
    """A new job's moves from inbox/ to pending/, without looking first (`Spool.gathering`
    looks for files an interrupted step left elsewhere; a job being admitted has none)."""
    layout = spool.layout
    return [
        (layout.root / origin, spool.path_in(layout.pending, manifest, file_name))
        for file_name, origin in manifest.sources()
        if origin
    ]


def _shown(steps: fsops.Steps, index: int, in_place: set[str], name: str) -> None:
    """After its (optional) status file's step: in place unless it was left out."""
    if index not in steps.left_out:
        in_place.add(name)


def _json(manifest: Manifest) -> bytes:
    return manifest.model_dump_json(indent=2).encode()
