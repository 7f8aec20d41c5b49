"""Drops the service has seen but not admitted yet: each shows a `waiting` status with what
it waits for (SPEC: "Waiting, overflow and retries"), under the name and job id the job
will keep once admitted or refused, so a station polling one name follows it throughout.

A name is reserved at first sight, so no other drop can take it meanwhile; a drop that
leaves inbox/ before it is decided takes its status file with it. After a restart, the
waiting statuses left in outbox/ are taken back by their drops, or removed.
"""

from __future__ import annotations

from pathlib import Path

from hotfolder.jobs import Jobs
from hotfolder.jobstatus import JobStatus
from hotfolder.names import fold
from hotfolder.positions import Hold
from hotfolder.records import Seen, seen_as
from hotfolder.spool import JobState
from hotfolder.takennames import TakenNames

GroupKey = tuple[Path, str]  # (folder, stem), as intake groups files

# Shown while a ready pair waits for admission to take files again (the disk is nearly full).
FOR_DISK = "waiting for free disk space on the server"


class Arrivals:
    def __init__(self, jobs: Jobs, names: TakenNames | None = None) -> None:
        self.jobs = jobs
        self.names = names  # intake's record of the names taken, asked before the disk
        self._seen: dict[GroupKey, tuple[Seen, JobStatus, Hold | None]] = {}
        self._names: set[str] = set()
        self._leftovers: dict[str, JobStatus] | None = None  # from before a restart

    @property
    def reserved(self) -> set[str]:
        """Names held by waiting drops: no other drop may take them."""
        return self._names

    def __len__(self) -> int:
        return len(self._seen)

    def show(
        self,
        key: GroupKey,
        relative: str,
        source: str,
        detail: str,
        now: float,
        *,
        hold: Hold | None = None,
    ) -> None:
        """The drop `relative` (to inbox/, without extension) waits: say so, and what for.
        `hold`: it waits for room in the queue, and where it will join it."""
        known = self._seen.get(key)
        if known is not None and (known[1].detail, known[1].source, known[2]) == (
            detail,
            f"inbox/{source}",
            hold,
        ):
            return
        seen = known[0] if known is not None else self._reserve(relative, now)
        status = JobStatus(
            job_id=seen.job_id,
            name=seen.name,
            status=JobState.waiting,
            created_at=seen.created_at,
            source=f"inbox/{source}",
            detail=detail,
            attempts=0,
        )
        self._seen[key] = (seen, status, hold)
        self.jobs.waiting(status, hold)

    def _reserve(self, relative: str, now: float) -> Seen:
        left = self._leftover(f"inbox/{relative}")
        if left is not None:
            seen = Seen(left.name, left.job_id, left.created_at or "")
        else:
            seen = seen_as(self.jobs.layout, relative, now, self._names, self.names)
        self._names.add(seen.name)
        return seen

    def _leftover(self, stem: str) -> JobStatus | None:
        if self._leftovers is None:
            self._leftovers = self.jobs.board.take_leftovers()
        return self._leftovers.pop(stem, None)

    def left_waiting(self, name: str, detail: str) -> tuple[str, str] | None:
        """The drop an earlier run showed as job `name` waiting for `detail`, not looked at by
        this run yet: its stem (`inbox/RELATIVE`) and the name it was shown with, if exactly
        one is (letter case and Unicode form matter only to tell two apart)."""
        if self._leftovers is None:
            self._leftovers = self.jobs.board.take_leftovers()
        waiting = {s: st.name for s, st in self._leftovers.items() if st.detail == detail}
        matches = [s for s, shown in waiting.items() if shown == name]
        if not matches:
            matches = [s for s, shown in waiting.items() if fold(shown) == fold(name)]
        return (matches[0], waiting[matches[0]]) if len(matches) == 1 else None

    def unseen(self, relative: str, now: float, taken: set[str]) -> Seen:
        """The name and id of a drop admitted or refused without having been shown (nor
        reserved): none of the waiting drops' names, nor of `taken` (jobs being admitted)."""
        return seen_as(self.jobs.layout, relative, now, self._names | taken, self.names)

    def peek(self, key: GroupKey, relative: str) -> Seen | None:
        """The name and id a drop was shown with (also by an earlier run), for its admission
        or refusal; None if it was never shown. It keeps them until `done`: an admission
        or refusal the disk refuses is tried again under the same name."""
        known = self._seen.get(key)
        if known is not None:
            return known[0]
        if self._leftovers is None:
            self._leftovers = self.jobs.board.take_leftovers()
        left = self._leftovers.get(f"inbox/{relative}")
        return None if left is None else Seen(left.name, left.job_id, left.created_at or "")

    def done(self, key: GroupKey, relative: str) -> None:
        """The drop was admitted or refused: its name is no longer held as waiting."""
        known = self._seen.pop(key, None)
        if known is not None:
            self._names.discard(known[0].name)
        elif self._leftovers is not None:
            self._leftovers.pop(f"inbox/{relative}", None)

    def sweep(self, present: set[GroupKey], stems: set[str]) -> None:
        """After a tick: drops no longer in inbox/ (`present`: every group the tick saw) lose
        their waiting status; so do statuses left by an earlier run whose drop is gone
        (`stems`: every group's `inbox/RELATIVE`, without extension)."""
        for key in [k for k in self._seen if k not in present]:
            seen, status, _hold = self._seen.pop(key)
            self._names.discard(seen.name)
            self.jobs.unwaiting(status)
        if self._leftovers is None:
            self._leftovers = self.jobs.board.take_leftovers()
        for stem in [s for s in self._leftovers if s not in stems]:
            self.jobs.unwaiting(self._leftovers.pop(stem))
