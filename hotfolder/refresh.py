"""When queued jobs' moved positions and waits reach their status files (the board's refresh).

A new state is written at once; a moved position or wait only by a refresh, at most once a
`POSITION_REFRESH_SECONDS`, and paced by what it costs: with 1,000 jobs queued a refresh is
1,000 atomic writes, and refreshing every second would leave the workers no time
(benchmarks/README.md, burst). A refresh is one pass over the files that moved, longest
unwritten first, spread over publishes of at most `REFRESH_CHUNK_SECONDS` each: between them
the publisher writes new states and queue.json, which in a burst waited behind a whole
refresh (up to a second; issue 14).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from hotfolder import fsops
from hotfolder.jobstatus import JobStatus
from hotfolder.written import Written

# Positions and estimated waits of queued jobs are refreshed in their files at most this often.
POSITION_REFRESH_SECONDS: Final = 1.0
# What one status file costs the disk written on its own (fsync, rename, folder fsync) on the
# benchmark machine: a refresh is paced by this, however fast its batches went.
REFRESH_FILE_SECONDS: Final = 0.003
# One publish writes moved positions for at most this long; the rest of the pass follows in
# the next publishes (the longest unwritten first, so each file is refreshed once per pass).
REFRESH_CHUNK_SECONDS: Final = 0.1


class Refresh:
    def __init__(self, files: Written, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.files = files
        self.monotonic = monotonic
        self.at = -POSITION_REFRESH_SECONDS  # when the last pass began
        self.every = POSITION_REFRESH_SECONDS  # how long a pass waits after the one before
        self.going = False  # a pass began and has files left to write
        self._since = 0  # files written since this stamp are fresh for this pass
        self._cost = 0.0  # what this pass has cost so far, in seconds

    def due(self, now: float) -> bool:
        """Whether this publish refreshes positions (it begins or goes on with a pass)."""
        return self.going or now - self.at >= self.every

    def restart(self) -> None:
        """The next publish refreshes every moved file (the last publish: all must be current)."""
        self.going = False
        self.at = -self.every

    def begin(self, now: float) -> None:
        """This publish refreshes: a new pass, unless one is under way."""
        if not self.going:
            self.at, self._since, self._cost, self.going = now, self.files.stamp(), 0.0, True

    def write(
        self,
        moved: list[JobStatus],
        write_batch: Callable[[list[JobStatus]], None],
        *,
        whole: bool = False,
    ) -> None:
        """Write this pass's share of `moved` (statuses whose files differ only in position or
        wait): those not written since the pass began, for at most REFRESH_CHUNK_SECONDS
        (all of them if `whole`: the last publish)."""
        todo = sorted(
            (s for s in moved if self.files.written_at(s) < self._since),
            key=self.files.written_at,
        )
        started = self.monotonic()
        done = 0
        while done < len(todo):
            if not whole and done and self.monotonic() - started >= REFRESH_CHUNK_SECONDS:
                break
            batch = todo[done : done + fsops.WRITE_BATCH_FILES]
            write_batch(batch)
            done += len(batch)
        # Batched, each file still counts as if written alone (the workers' share of the disk).
        self._cost += max(self.monotonic() - started, REFRESH_FILE_SECONDS * done)
        if done < len(todo):
            self.files.changed.set()  # the rest with the next publish
            return
        self.going = False
        self.every = max(POSITION_REFRESH_SECONDS, 10 * self._cost)
