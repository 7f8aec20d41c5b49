"""Start-up: finish or requeue what the last run left in processing/ and pending/; and,
while running, finish endings a refusing disk cut short.

Every change of state still goes through `Jobs` (its `finish` and `put_back_after_crash`);
this only decides the order: rejections cut short, endings cut short, then the jobs that
were in flight, oldest first, then the queue as it stands.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hotfolder.spool import FINAL_STATES, JobState

if TYPE_CHECKING:
    from hotfolder.jobs import Jobs

log = logging.getLogger(__name__)


def recover(jobs: Jobs) -> None:
    jobs.spool.load()
    jobs.board.load_finished()
    replayed = jobs.replay_rejections()
    if replayed:
        log.info("finished %d rejection(s) a crash had interrupted", replayed)
    for manifest in jobs.spool.unfinished():
        log.info("finishing %s, interrupted while it ended", manifest.name)
        try:
            jobs.finish(manifest)
        except OSError as e:
            log.error("cannot finish %s yet (%s); tried again later", manifest.name, e)
    # Oldest first, so that jobs that were in flight together keep their order at the head.
    in_flight = [m for m in jobs.spool.processing() if m.state not in FINAL_STATES]
    for found in sorted(in_flight, key=lambda m: (m.priority != "high", m.seq)):
        # A queued one here was being put back when the crash came: it was running too.
        jobs.put_back_after_crash(found.model_copy(update={"state": JobState.processing}))
    for manifest in jobs.spool.queued():
        jobs.board.queued(manifest)


def finish_unfinished(jobs: Jobs) -> bool:
    """Finish jobs whose ending a refusing disk cut short; True if none are left."""
    for manifest in jobs.spool.unfinished():
        try:
            jobs.finish(manifest)
        except OSError as e:
            jobs.backoff.ending_refused(manifest, e)
            return False
        jobs.backoff.cleared()
    return True
