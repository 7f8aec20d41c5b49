"""The queue on disk: `pending/` and `processing/` are its truth.

A job is its input files in pending/ (then processing/) plus a manifest,
`NAME.job.json`, in the matching private folder under `.hotfolder/spool/`. The
manifest is written first and moved first, so where the manifest is says where
the job is; its files follow it. Every step is a rename or an atomic write, and
`gather` finishes any step a crash interrupted, so replaying a step is harmless.

Order: a job's sort key is fixed when it is admitted — (head, priority, seq),
where seq grows with every admission and never goes back across restarts — so a
restart keeps the order and an image's mtime cannot move it.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from hotfolder import fsops
from hotfolder.batch import Batch, Joined, Shown
from hotfolder.layout import Layout
from hotfolder.order import QueueOrder, station_of

MANIFEST_SUFFIX = ".job.json"
# A job's copies of its reference images: file name beside the manifest -> bytes.
Copies = Mapping[str, bytes]


class JobState(StrEnum):
    # A drop seen in inbox/ but not admitted yet (status files only; a manifest never has it).
    waiting = "waiting"
    queued = "queued"
    processing = "processing"
    completed = "completed"
    failed = "failed"
    cancelled = "cancelled"


FINAL_STATES = frozenset({JobState.completed, JobState.failed, JobState.cancelled})


class Reference(BaseModel):
    """A reference image the job took its own copy of at admission (SPEC "Reference images")."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str  # the asset's name as `images:` wrote it (`_logo.png`)
    sha256: str  # of the copy
    file: str  # the copy's file name beside the manifest (`NAME.ref1._logo.png`)


class Manifest(BaseModel):
    """Everything the service knows about one admitted job, kept beside its files."""

    model_config = ConfigDict(extra="ignore")

    job_id: str
    name: str
    seq: int
    head: bool = False
    priority: Literal["normal", "high"] = "normal"
    state: JobState = JobState.queued
    attempts: int = 1
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    source: str  # where the image was dropped, relative to the root
    image: str  # the image's file name beside the manifest
    sidecar: str | None = None  # the sidecar's file name beside the manifest, if one was dropped
    inbox_image: str  # relative to the root; where admission takes the image from
    inbox_sidecar: str | None = None
    # A camera's RAW file(s) beside the edited JPEG or HEIF: file names beside the manifest,
    # and where admission takes them from (relative to the root), in the same order.
    companions: list[str] = []
    inbox_companions: list[str] = []
    spec: dict[str, Any]
    seed: int
    result_path: str | None = None
    error_code: str | None = None
    error: str | None = None
    error_details: str | None = None
    errors: list[str] = []  # earlier attempts' errors, kept across retries
    # Times the service (or its worker) died during this job since it was admitted or
    # retried: past `max_attempts` it fails as `crashed` (`attempts` also counts retries).
    crashes: int = 0
    # The claim: which worker took the job (and on which device); set with state processing.
    worker: str | None = None
    device: str | None = None
    # Copies of the reference images, main image first in the edit; they travel with the job.
    references: list[Reference] = []

    @property
    def sort_key(self) -> tuple[int, int, int]:
        return (0 if self.head else 1, 0 if self.priority == "high" else 1, self.seq)

    @property
    def parent(self) -> str:
        return self.name.rpartition("/")[0]

    def files(self) -> list[str]:
        return [name for name, _origin in self.sources()]

    def sources(self) -> list[tuple[str, str | None]]:
        """Each file of the job beside its manifest, and where admission takes it from
        (relative to the root; None for a reference's copy, written in place at admission)."""
        own: list[tuple[str, str | None]] = [(self.image, self.inbox_image)]
        if self.sidecar:
            own.append((self.sidecar, self.inbox_sidecar))
        own += zip(self.companions, self.inbox_companions, strict=True)
        return own + [(reference.file, None) for reference in self.references]


def read_manifests(manifests: Path) -> dict[str, Manifest]:
    """Every readable manifest under `manifests`, by job name."""
    found: dict[str, Manifest] = {}
    if not manifests.is_dir():
        return found
    for path in sorted(manifests.rglob(f"*{MANIFEST_SUFFIX}")):
        if fsops.is_temp_name(path.name):
            continue
        try:
            manifest = Manifest.model_validate(json.loads(path.read_bytes()))
        except (OSError, ValueError, ValidationError):
            # Unreadable manifests are left where they are for a person to look at.
            continue
        found[manifest.name] = manifest
    return found


class Spool:
    """Admit, claim, requeue and finish jobs; one lock guards the in-memory index of the disk."""

    def __init__(self, layout: Layout, order: QueueOrder | None = None) -> None:
        self.layout = layout
        # The order in force (dispatch: fifo | fair), shared with the board's positions.
        self.order = order or QueueOrder()
        self._lock: threading.RLock = threading.RLock()
        # Told when a queued job leaves the queue (claimed or ended): room for a held drop.
        self.on_left: Callable[[], None] = lambda: None
        self._pending = _Pending()
        self._processing: dict[str, Manifest] = {}
        self._unrecorded: set[str] = set()  # claimed in memory, not yet on disk
        # Admitted with `later`, not on disk yet (`write_admitted`): counted, never claimed.
        self._batch = Batch(self)
        self._seqs = itertools.count(1)

    # --- reading the disk ---

    def _manifests(self, folder: Path) -> Path:
        """Where the manifests of the jobs in `folder` (pending/ or processing/) live.

        They are private to the service, so they stay under `.hotfolder/`, and pending/
        and processing/ hold only what people dropped."""
        return self.layout.manifests(folder)

    def manifest_path(self, folder: Path, name: str) -> Path:
        return self._manifests(folder) / f"{name}{MANIFEST_SUFFIX}"

    def scan(self, folder: Path) -> dict[str, Manifest]:
        """The manifests on disk of the jobs in `folder` (pending/ or processing/), by name."""
        return read_manifests(self._manifests(folder))

    def load(self) -> None:
        """Rebuild the index from `pending/` and `processing/`, finishing interrupted moves."""
        with self._lock:
            self._pending = _Pending(self.scan(self.layout.pending))
            self._processing = self.scan(self.layout.processing)
            for name, manifest in list(self._pending.items()):
                if manifest.state == JobState.processing:
                    # A claim of an older version, cut short after it was written.
                    self._move_manifest(manifest, self.layout.pending, self.layout.processing)
                    del self._pending[name]
                    self._processing[name] = manifest
            for manifest in self._pending.values():
                self.gather(manifest, self.layout.pending)
            for manifest in self._processing.values():
                self.gather(manifest, self.layout.processing)
            seqs = [m.seq for m in (*self._pending.values(), *self._processing.values())]
            self._seqs = itertools.count(max(seqs, default=0) + 1)

    def gather(self, manifest: Manifest, here: Path) -> None:
        """Bring the job's files next to its manifest, from wherever an interrupted step left them."""
        fsops.move_many(self.gathering(manifest, here))

    def gathering(self, manifest: Manifest, here: Path) -> list[tuple[Path, Path]]:
        """The moves that bring the job's files next to its manifest in `here`.

        A place that cannot be looked at counts as holding nothing (`lexists`): inbox/ on a
        share that dropped out must not stop a job whose files are in pending/ long since.
        The spool's own folders come first: a file in inbox/ under the job's old name is the
        job's own only if its admission was cut short; else it is a new drop of the same name
        (its own job, `NAME~2`), never this job's (a chaos test found a queued job taking
        it at its claim, and its own files left in pending/ for good)."""
        moves = []
        for file_name, origin in manifest.sources():
            target = self.path_in(here, manifest, file_name)
            if os.path.lexists(target):
                continue
            candidates = [
                self.path_in(folder, manifest, file_name)
                for folder in (self.layout.pending, self.layout.processing)
            ]
            if origin:
                candidates.append(self.layout.root / origin)
            for candidate in candidates:
                if candidate != target and os.path.lexists(candidate):
                    moves.append((candidate, target))
                    break
        return moves

    @property
    def lock(self) -> threading.RLock:
        """Held by anything that must see and change the queue without the worker in between."""
        return self._lock

    # --- queries ---

    def pending_count(self) -> int:
        # Without the lock: intake asks for every drop, and the workers hold the lock while
        # they write (benchmarks/README.md, burst). Two counts kept as jobs come and go.
        return self._pending.queued + len(self._batch)

    def queued(self) -> list[Manifest]:
        """Pending jobs in the order the workers will take them."""
        with self._lock:
            return self.order.arrange(self._waiting(), key=_sort_key, name=_name)

    def upcoming(self, count: int) -> list[Manifest]:
        """The next `count` jobs the workers will take, in order."""
        return self.order.upcoming(self._waiting(), key=_sort_key, name=_name, count=count)

    def _waiting(self) -> list[Manifest]:
        """The queued jobs, in no particular order."""
        with self._lock:
            return [m for m in self._pending.values() if m.state == JobState.queued]

    def station_count(self, station: str) -> int:
        """Queued jobs of one station (a top-level folder of inbox/; "" for inbox/ itself)."""
        with self._lock:
            queued = sum(
                1
                for m in self._pending.values()
                if m.state == JobState.queued and station_of(m.name) == station
            )
            return queued + self._batch.in_station(station)

    def admitting(self) -> set[str]:
        """Names of jobs admitted but not written yet: taken, though nothing is on disk."""
        return self._batch.names()

    def names(self) -> list[str]:
        """The names of every job in the queue: pending/, processing/, admitted not written yet."""
        with self._lock:
            return [*self._pending, *self._processing, *self._batch.names()]

    def unfinished(self) -> list[Manifest]:
        """Jobs that reached a final state but whose files have not reached their folder yet."""
        with self._lock:
            every = [*self._pending.values(), *self._processing.values()]
            return [m for m in every if m.state in FINAL_STATES]

    def processing(self) -> list[Manifest]:
        with self._lock:
            return list(self._processing.values())

    def find(self, name: str) -> Manifest | None:
        """The job of that name in the queue, if any; without the lock, which an ending holds
        on the disk: a job moving between pending and processing is added before it is
        removed, so it is always found. To act on what is found, hold the lock."""
        return self._processing.get(name) or self._pending.get(name)

    def next_seq(self) -> int:
        return next(self._seqs)  # one step of the C iterator: atomic, so no lock

    # --- moves ---

    def _prune(self, folder: Path, manifest: Manifest) -> None:
        """Remove the job's subfolders in `folder` and beside its manifest once empty."""
        fsops.prune_empty_dirs(folder / manifest.parent, folder)
        manifests = self._manifests(folder)
        fsops.prune_empty_dirs(manifests / manifest.parent, manifests)

    def path_in(self, folder: Path, manifest: Manifest, file_name: str) -> Path:
        return folder / manifest.parent / file_name

    def _write(self, folder: Path, manifest: Manifest) -> None:
        fsops.write_atomic(self.manifest_path(folder, manifest.name), _json(manifest))

    def admit(
        self, manifest: Manifest, copies: Copies | None = None, *, later: bool = False
    ) -> None:
        """Write the manifest into pending/, then move the dropped files after it.

        `copies` (file name -> bytes: the reference images' copies) are written first, so a
        manifest on disk always has them; a crash before the manifest leaves the drop in
        inbox/, and its admission again writes the same copies over the same names.

        `later`: only note it (counted against the caps, its name taken); `write_admitted`
        writes every job noted so together, and until then nothing else sees it. Only
        intake admits `later`, on its one thread, so that needs no lock.
        """
        if later:
            self._batch.add(manifest, copies or {})
            return
        with self._lock:
            for file_name, data in (copies or {}).items():
                fsops.write_atomic(self.path_in(self.layout.pending, manifest, file_name), data)
            self._write(self.layout.pending, manifest)
            self._pending[manifest.name] = manifest
            self.gather(manifest, self.layout.pending)

    def write_admitted(
        self,
        joined: Joined = lambda written, shown: None,
        names: Collection[str] | None = None,
        *,
        shown: Shown | None = None,
        hold: Callable[[], AbstractContextManager[object]] = contextlib.nullcontext,
    ) -> tuple[list[Manifest], OSError | None]:
        """Put the jobs admitted `later` (those of `names`, or all) on disk as one batch, with
        their status files if `shown` (batch.py); those written join the queue and are passed
        to `joined` under the lock."""
        return self._batch.write(joined, names, shown=shown, hold=hold)

    def enqueue(self, manifest: Manifest) -> None:
        """A job the batch has put on disk joins pending/ (the caller holds the lock)."""
        self._pending[manifest.name] = manifest

    def _move_manifest(self, manifest: Manifest, source: Path, target: Path) -> None:
        fsops.move(
            self.manifest_path(source, manifest.name),
            self.manifest_path(target, manifest.name),
        )

    def claim(self, claim: dict[str, Any]) -> Manifest | None:
        """Take the first queued job: `claim` (state processing, worker, start) goes into its
        manifest at once in memory, so nothing else can take or change it; the disk follows
        with `record_claim` (the caller's next step, off the device's path)."""
        with self._lock:
            first = self.order.first(self._waiting(), key=_sort_key, name=_name)
            if first is None:
                return None
            self.order.served(first.name)
            manifest = first.model_copy(update={**claim, "head": False})
            # Added before it is removed: `find`, without the lock, always sees it.
            self._processing[manifest.name] = manifest
            del self._pending[manifest.name]
            self._unrecorded.add(manifest.name)
            self.on_left()
            return manifest

    def record_claim(self, name: str) -> None:
        """Put a claim on disk: the manifest, then the job's files, moved to processing/
        (idempotent; every later step does it first). Renames only, and none waited on: where
        the manifest is says where the job is, and that is all recovery needs (a job found in
        processing/ was running; its claim's fields reach the disk with its ending). A crash
        before the moves leaves the job queued, as if never taken; after, it was running.
        """
        with self._lock:
            if name not in self._unrecorded:
                return
            manifest = self._processing[name]
            pending, processing = self.layout.pending, self.layout.processing
            steps = fsops.Steps(durable=False)
            steps.move(self.manifest_path(pending, name), self.manifest_path(processing, name))
            for source, target in self.gathering(manifest, processing):
                steps.move(source, target)
            steps.commit()
            self._prune(pending, manifest)
            self._unrecorded.discard(name)

    def update(self, manifest: Manifest) -> None:
        """Rewrite a job's manifest where it is."""
        with self._lock:
            self.record_claim(manifest.name)
            if manifest.name in self._processing:
                self._write(self.layout.processing, manifest)
                self._processing[manifest.name] = manifest
            elif manifest.name in self._pending:
                self._write(self.layout.pending, manifest)
                self._pending[manifest.name] = manifest
            else:
                raise KeyError(manifest.name)

    def requeue(self, manifest: Manifest) -> None:
        """Put a job from processing/ back at the head of pending/ (state queued)."""
        with self._lock:
            self.record_claim(manifest.name)
            manifest = manifest.model_copy(update=_QUEUED_AGAIN)
            self._write(self.layout.processing, manifest)
            self._move_manifest(manifest, self.layout.processing, self.layout.pending)
            self._pending[manifest.name] = manifest
            del self._processing[manifest.name]
            self.gather(manifest, self.layout.pending)
            self._prune(self.layout.processing, manifest)

    def finish(self, manifest: Manifest, destination: Path | None, ending: Ending) -> None:
        """Close a job in its final state as one set of steps (`fsops.Steps`), in this order:
        `ending.results` and `.pictures` in place; the manifest rewritten with the final
        state; the reason file; the inputs moved to `destination` (archive/ or failed/) or
        deleted (None); the final status; the manifest removed.

        A crash before the manifest's rewrite leaves the job running (recovery runs it again);
        after it, replaying `finish` on the next start ends it (every step is skipped or
        redone harmlessly). The final state is in memory from its rewrite on, so a refusing
        disk part way through is finished later (`unfinished`). Raises OSError.
        """
        with self._lock:
            self.record_claim(manifest.name)
            name = manifest.name
            folder = self.layout.processing if name in self._processing else self.layout.pending
            steps = ending.steps(self, manifest, folder, destination)
            # Gone from the queue as its status says so, while the folders are fsynced.
            steps.call(lambda: self._forget(name))
            steps.commit()
            self._prune(folder, manifest)

    def _forget(self, name: str) -> None:
        self._processing.pop(name, None)
        if name in self._pending:
            del self._pending[name]
            self.on_left()

    def remember(self, manifest: Manifest) -> None:
        """Take a job's manifest as it is (on disk, or to be ended again: `unfinished`)."""
        if manifest.name in self._processing:
            self._processing[manifest.name] = manifest
        else:
            self._pending[manifest.name] = manifest


@dataclass(frozen=True)
class Ending:
    """What a job's ending writes besides its manifest and its inputs' moves (`Spool.finish`)."""

    # Before the final state is on disk: the result, and the page's thumbnails (which are
    # left out, not the ending, if they cannot be written).
    results: Sequence[tuple[Path, bytes]] = ()
    pictures: Sequence[tuple[Path, bytes]] = ()
    reason: tuple[Path, bytes] | None = None  # failed/'s reason file, before the inputs move
    status: tuple[Path, bytes] | None = None  # the final status file, after them

    def steps(
        self, spool: Spool, manifest: Manifest, folder: Path, destination: Path | None
    ) -> fsops.Steps:
        """The ending of `manifest`, whose files are in `folder`, in the order `finish` says."""
        steps = fsops.Steps()
        for path, data in self.results:
            steps.write(path, data)
        for path, data in self.pictures:
            # The page's: never fail a job, nor wait on the disk (two fsyncs less per job;
            # the SPEC's files for others to read are the statuses, results and reasons).
            steps.write(path, data, optional=True, durable=False)
        steps.write(spool.manifest_path(folder, manifest.name), _json(manifest))
        steps.call(lambda: spool.remember(manifest))
        if self.reason is not None:
            steps.write(*self.reason)
        for file_name in manifest.files():
            source = spool.path_in(folder, manifest, file_name)
            if not source.exists():
                continue
            if destination is None:
                steps.remove(source)
            else:
                steps.move(source, spool.path_in(destination, manifest, file_name))
        if self.status is not None:
            steps.write(*self.status)
        steps.remove(spool.manifest_path(folder, manifest.name))
        return steps


class _Pending(dict[str, Manifest]):
    """pending/'s jobs by name, counting the queued ones as they come and go (changed under
    the spool's lock, read without it)."""

    def __init__(self, jobs: dict[str, Manifest] | None = None) -> None:
        super().__init__()
        self.queued = 0
        for name, manifest in (jobs or {}).items():
            self[name] = manifest

    def __setitem__(self, name: str, manifest: Manifest) -> None:
        old = self.get(name)
        self.queued += _is_queued(manifest) - _is_queued(old)
        super().__setitem__(name, manifest)

    def __delitem__(self, name: str) -> None:
        self.queued -= _is_queued(self.get(name))
        super().__delitem__(name)


# A job put back at the head of the queue, as if its interrupted attempt never started.
_QUEUED_AGAIN: Mapping[str, Any] = {
    "head": True,
    "state": JobState.queued,
    "worker": None,
    "device": None,
    "started_at": None,
}


def _is_queued(manifest: Manifest | None) -> int:
    return int(manifest is not None and manifest.state == JobState.queued)


def _json(manifest: Manifest) -> bytes:
    return manifest.model_dump_json(indent=2).encode()


def _sort_key(manifest: Manifest) -> tuple[int, int, int]:
    return manifest.sort_key


def _name(manifest: Manifest) -> str:
    return manifest.name
