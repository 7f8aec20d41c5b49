"""What the workers do when the disk refuses a job's result or ending: say so, and wait.

A full disk or a read-only share is not the job's fault. A completed job whose ending did
not reach its final state goes back to the queue; any other ending keeps its final state
and is finished once the disk takes files again (`recovery.finish_unfinished`). Meanwhile the
workers take no new job for WRITE_BACKOFF_SECONDS, and `queue.json`'s notes say why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hotfolder.spool import Manifest
from hotfolder.state import ServiceState

log = logging.getLogger("hotfolder.jobs")

# After a result or an ending cannot be written (full disk, read-only share), wait this long.
WRITE_BACKOFF_SECONDS = 10.0


class Backoff:
    def __init__(self, state: ServiceState, monotonic: Callable[[], float]) -> None:
        self.state = state
        self.monotonic = monotonic
        self._blocked_until = 0.0

    def ready(self) -> bool:
        """False while a refusing disk makes the workers wait."""
        return self.monotonic() >= self._blocked_until

    def cleared(self) -> None:
        """The disk took what it refused before."""
        self.state.note("worker", None)

    def result_refused(self, manifest: Manifest, error: OSError) -> None:
        """A completed job's ending did not reach its final state: it goes back to the queue."""
        log.error(
            "cannot write the result of %s: %s; job goes back to the queue", manifest.name, error
        )
        self.state.note("worker", f"cannot write results: {error}")
        self._block()

    def ending_refused(self, manifest: Manifest, error: OSError) -> None:
        """The job keeps its final state; it is finished once the disk lets us."""
        log.error(
            "cannot finish %s (%s): %s; retrying in %g s",
            manifest.name,
            manifest.state.value,
            error,
            WRITE_BACKOFF_SECONDS,
        )
        self.state.note("worker", f"cannot finish {manifest.name}: {error.strerror or error}")
        self._block()

    def _block(self) -> None:
        self._blocked_until = self.monotonic() + WRITE_BACKOFF_SECONDS
