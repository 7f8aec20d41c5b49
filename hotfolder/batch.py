"""Admissions written to disk as one batch (benchmarks/README.md, issue 14).

Intake admits a pair `later`: the job is counted against the caps and its name is taken at
once, but nothing else sees it; `write` then puts a batch of them on disk in the order a
single admission takes (the reference copies, every manifest, then every dropped file), with
the file fsyncs issued together and each folder fsynced once. A crash in between is finished
by `Spool.load`, or by admitting again, exactly as for one job.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
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
        under the spool's lock (so no claim comes between). The error, if any, is returned."""
        entries = list(self._jobs.values())
        if not entries:
            return [], None
        spool = self.spool
        batch = [manifest for manifest, _copies in entries]
        pending = spool.layout.pending
        paths = [spool.manifest_path(pending, m.name) for m in batch]
        error: OSError | None = None
        staged: list[fsops.Staged] = []
        try:
            # The slow part without the lock, which the workers hold while they write: the
            # files go to temporary names, and no one else knows of these jobs yet.
            copies = [
                (spool.path_in(pending, m, f), data) for m, c in entries for f, data in c.items()
            ]
            staged.append(fsops.stage(copies))
            manifests = [(path, _json(m)) for path, m in zip(paths, batch, strict=True)]
            staged.append(fsops.stage(manifests))
        except OSError as e:
            error = e
            for done in staged:
                done.discard()
        with spool.lock:
            written: list[Manifest] = []
            if error is None:
                written, error = _commit(staged, batch, paths)
            for manifest in written:
                spool.enqueue(manifest)
            self._jobs = {}
            try:
                fsops.move_many([move for m in written for move in spool.gathering(m, pending)])
            except OSError as e:
                # The manifests are written: the files follow at the claim or the next start.
                error = error or e
            joined(written)
        return written, error


def _commit(
    staged: list[fsops.Staged], batch: list[Manifest], paths: list[Path]
) -> tuple[list[Manifest], OSError | None]:
    """Rename a staged batch into place, copies first: the jobs whose manifest is there."""
    copies, manifests = staged
    try:
        copies.commit()  # a manifest on disk always has its copies
    except OSError as e:
        manifests.discard()
        return [], e
    try:
        manifests.commit()
    except OSError as e:
        return [m for m, path in zip(batch, paths, strict=True) if path.exists()], e
    return batch, None


def _json(manifest: Manifest) -> bytes:
    return manifest.model_dump_json(indent=2).encode()
