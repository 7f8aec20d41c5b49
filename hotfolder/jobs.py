"""The one owner of job state: every change of a job's state happens here, and only here.

Intake admits, the dispatcher claims and reports outcomes, the controls cancel and retry,
start-up recovers; each asks `Jobs`, which checks the move against `TRANSITIONS`, writes
the manifest (through the spool) and the status file (through the board), under one lock.
Nothing else writes a manifest or a status file.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from hotfolder import fsops, recovery, rejection
from hotfolder.backoff import Backoff
from hotfolder.closing import close_job
from hotfolder.config import Config
from hotfolder.decoded import Decoded
from hotfolder.errors import HotfolderError, Reason
from hotfolder.jobstatus import JobStatus, iso
from hotfolder.layout import Layout
from hotfolder.notify import Notifier
from hotfolder.order import QueueOrder
from hotfolder.positions import Hold
from hotfolder.showing import Showing
from hotfolder.spool import FINAL_STATES, Copies, JobState, Manifest, Spool
from hotfolder.state import ServiceState
from hotfolder.status import Board

log = logging.getLogger(__name__)

RESULT_SUFFIXES = {"png": ".png", "jpeg": ".jpeg", "webp": ".webp"}

# The legal moves between states; anything else is a bug and raises IllegalTransition.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # Intake's, before a job exists: a waiting drop is admitted or refused (or, held for
    # room in the queue, cancelled).
    JobState.waiting: frozenset({JobState.queued, JobState.failed, JobState.cancelled}),
    JobState.queued: frozenset({JobState.processing, JobState.failed, JobState.cancelled}),
    JobState.processing: frozenset(
        {JobState.queued, JobState.completed, JobState.failed, JobState.cancelled}
    ),
    JobState.completed: frozenset(),
    JobState.failed: frozenset({JobState.queued}),
    JobState.cancelled: frozenset({JobState.queued}),
}


class IllegalTransition(HotfolderError):
    """A job was asked to move between states the table does not allow."""


def check_transition(manifest: Manifest, to: JobState) -> None:
    if to not in TRANSITIONS[manifest.state]:
        raise IllegalTransition(
            f"{manifest.name}: {manifest.state.value} -> {to.value} is not a legal move"
        )


class Jobs:
    def __init__(
        self,
        layout: Layout,
        config: Config,
        spool: Spool,
        board: Board,
        state: ServiceState,
        *,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.layout = layout
        self.config = config
        self.spool = spool
        self.board = board
        self.state = state
        self.notifier = notifier
        self.clock = clock
        self.monotonic = monotonic
        self.lock = spool.lock
        # One order in force for claims (spool) and positions (board): `dispatch` from the config.
        spool.order = board.order = QueueOrder(config.dispatch)
        # Asks the slot running a job to stop it (set by the dispatcher).
        self.stop_running: Callable[[Manifest], None] = lambda manifest: None
        # Told when admitted jobs join the queue, before their folders are fsynced (the
        # dispatcher wakes: a claim waits on nothing but the spool's lock).
        self.on_queued: Callable[[], None] = lambda: None
        # Told when a queued job leaves the queue (claimed or ended): room for a held drop.
        self.on_left: Callable[[], None] = lambda: None
        spool.on_left = lambda: self.on_left()  # noqa: PLW0108 (set later: the service)
        self.backoff = Backoff(state, monotonic)
        # Images intake decoded whole while the queue was short, for the workers (decoded.py).
        self.decoded = Decoded()

    # --- queries ---

    def find(self, name: str) -> Manifest | None:
        return self.spool.find(name)

    def queued(self) -> list[Manifest]:
        return self.spool.queued()

    def upcoming(self, count: int) -> list[Manifest]:
        return self.spool.upcoming(count)

    def pending_count(self) -> int:
        return self.spool.pending_count()

    def in_flight(self) -> list[Manifest]:
        return [m for m in self.spool.processing() if m.state == JobState.processing]

    def can_dispatch(self) -> bool:
        """False while a refusing disk makes the workers wait (backoff.py)."""
        return self.backoff.ready()

    # --- transitions ---

    def waiting(self, status: JobStatus, hold: Hold | None = None) -> None:
        """A drop seen in inbox/, not admitted yet (its status only); `hold`: held for room."""
        self.board.waiting(status, hold)

    def unwaiting(self, status: JobStatus) -> None:
        """A waiting drop left inbox/ before it was decided."""
        self.board.unwaiting(status)

    def admit(
        self, manifest: Manifest, copies: Copies | None = None, *, later: bool = False
    ) -> None:
        """A new job (state queued) joins the queue, with its copies of its reference images.
        `later`: it joins with the batch that `write_admitted` puts on disk; until then it
        only counts against the caps."""
        if later:
            # Memory only, and intake's own: no lock to wait for.
            self.spool.admit(manifest, copies, later=True)
            return
        with self.lock:
            self.spool.admit(manifest, copies)
            self.board.queued(manifest)

    def write_admitted(
        self, names: Collection[str] | None = None
    ) -> tuple[list[Manifest], OSError | None]:
        """Write the jobs admitted `later` (those of `names`, or all) together, each with its
        status file reading queued (showing.py); those on disk are queued and shown."""
        showing = Showing(self.board, self.on_queued)
        return self.spool.write_admitted(
            showing.joined, names, shown=showing.files, hold=self.board.writing
        )

    def reject(self, drop: rejection.Rejection) -> None:
        """A drop that never became a job goes to failed/ with its reason (and its
        `notify_url`, if its sidecar had one, is told)."""
        rejection.reject(self.layout, self.board, drop)
        if drop.notify_url and self.notifier is not None:
            self.notifier.send(drop.notify_url, drop.status)

    def replay_rejections(self) -> int:
        """Finish rejections a crash or a refusing disk cut short; how many there were."""
        return rejection.replay(self.layout, self.board)

    def claim(self, worker: str, device: str) -> Manifest | None:
        """The next job in queue order, taken by `worker` in one step (state processing).

        In memory only, so a slot waits for nothing: the caller hands the job over, then
        calls `record_claim` to put the claim on disk and show it."""
        with self.lock:
            if not self.can_dispatch():
                return None
            return self.spool.claim(
                {
                    "state": JobState.processing,
                    "started_at": iso(self.clock()),
                    "worker": worker,
                    "device": device,
                }
            )

    def record_claim(self, name: str) -> None:
        with self.lock:
            manifest = self.spool.find(name)
            if manifest is None or manifest.state != JobState.processing:
                return  # already ended (an instant edit): its ending recorded the claim
            self.spool.record_claim(name)
            self.board.processing(manifest)
        log.info("processing %s on %s (attempt %d)", name, manifest.worker, manifest.attempts)

    def progress(self, job_id: str, step: int, steps: int) -> None:
        """A running job's progress, for the publisher; no lock: the slot's thread never waits."""
        self.board.progress(job_id, step, steps)

    def complete(
        self,
        name: str,
        data: bytes,
        extension: str,
        pictures: Sequence[tuple[Path, bytes]] = (),
    ) -> bool:
        """End a running job as completed: its result (and the page's `pictures`) in place,
        then its final state, archive and status, all in one ending; False if the disk refused."""
        manifest = self._running(name)
        if manifest is None:
            return False
        result_path = self.layout.outbox / f"{manifest.name}{extension}"
        ended = self._end(
            manifest,
            JobState.completed,
            {"result_path": self.layout.relative(result_path)},
            results=[(result_path, data)],
            pictures=pictures,
        )
        if ended:
            log.info("completed %s -> %s", manifest.name, self.layout.relative(result_path))
        return ended

    def fail(
        self,
        name: str,
        code: Reason | str,
        message: str,
        details: str = "",
        *,
        state: JobState = JobState.failed,
        pictures: Sequence[tuple[Path, bytes]] = (),
    ) -> bool:
        """End a queued or running job as failed (or cancelled) with its reason (and the
        page's `pictures`)."""
        with self.lock:
            manifest = self.spool.find(name)
            if manifest is None or manifest.state in FINAL_STATES:
                return False
            code_text = code.value if isinstance(code, Reason) else code
            ended = self._end(
                manifest,
                state,
                {"error_code": code_text, "error": message, "error_details": details or None},
                pictures=pictures,
            )
        if ended:
            log.warning("%s %s: %s: %s", state.value, name, code_text, message)
        return ended

    def put_back(self, name: str, *, lost: str | None = None) -> None:
        """A running job goes back to the head of the queue. With `lost` (the worker died
        with it) that costs an attempt, and past `max_attempts` it fails as `crashed`."""
        with self.lock:
            manifest = self._running(name)
            if manifest is None:
                return
            check_transition(manifest, JobState.queued)
            if lost is not None:
                # The SPEC's `crashed`: the service died during this job max_attempts times
                # (retries by the operator do not count, `attempts` does count them).
                died = manifest.crashes + 1
                if died >= self.config.max_attempts:
                    self.fail(name, Reason.crashed, *_crashed(manifest, lost, self.config))
                    return
                tried = manifest.attempts
                manifest = manifest.model_copy(
                    update={
                        "attempts": tried + 1,
                        "crashes": died,
                        "errors": [*manifest.errors, f"attempt {tried}: {lost}"],
                    }
                )
                log.warning("%s goes back to the head of the queue (%s)", name, lost)
            self.spool.requeue(manifest)
            self.board.queued(self.spool.find(name) or manifest)

    def cancel(self, name: str) -> tuple[bool, str]:
        """Cancel a queued job now, or ask the slot running it to stop at its next step."""
        name = name.strip("/")
        with self.lock:
            manifest = self.spool.find(name)
            if manifest is not None and manifest.state == JobState.processing:
                self.stop_running(manifest)
                return True, f"{name} is being cancelled (it stops at its next step)"
            if manifest is None or manifest.state != JobState.queued:
                return False, f"no queued or processing job named {name}; nothing changed"
            self.fail(name, Reason.cancelled, "cancelled while queued", state=JobState.cancelled)
        return True, f"{name} cancelled; its files are in failed/"

    def retry(self, manifest: Manifest, failed_folder: Path, copies: Copies | None = None) -> None:
        """A failed or cancelled job's files, checked, go back into the queue (fresh copies too)."""
        with self.lock:
            self.spool.admit(manifest, copies)
            fsops.remove(self.layout.reason_path(manifest.name))
            fsops.prune_empty_dirs(failed_folder, self.layout.failed)
            self.board.queued(manifest)

    # --- start-up ---

    def recover(self) -> None:
        """Finish or requeue what the last run left in processing/ and pending/."""
        recovery.recover(self)

    def put_back_after_crash(self, manifest: Manifest) -> None:
        with self.lock:
            self.spool.update(manifest)
            self.put_back(manifest.name, lost="the service stopped during this job")

    # --- endings ---

    def _running(self, name: str) -> Manifest | None:
        manifest = self.spool.find(name)
        if manifest is None or manifest.state != JobState.processing:
            log.warning("%s is no longer running; its outcome is dropped", name)
            return None
        return manifest

    def _end(
        self,
        manifest: Manifest,
        state: JobState,
        fields: dict[str, object],
        *,
        results: Sequence[tuple[Path, bytes]] = (),
        pictures: Sequence[tuple[Path, bytes]] = (),
    ) -> bool:
        """Record the final state and close the job in one ending (`Spool.finish`); False if
        the disk refused. Refused before the final state was on disk, a completed job goes
        back to the queue (its result may not be whole); any other ending is tried again."""
        with self.lock:
            check_transition(manifest, state)
            manifest = manifest.model_copy(
                update={"state": state, "completed_at": iso(self.clock()), **fields}
            )
            try:
                self.finish(manifest, results, pictures)
            except OSError as e:
                current = self.spool.find(manifest.name)
                if current is not None and current.state in FINAL_STATES:
                    self.backoff.ending_refused(current, e)
                elif state == JobState.completed:
                    self.backoff.result_refused(manifest, e)
                    self.put_back(manifest.name)
                else:
                    self.spool.remember(manifest)  # its ending is tried again (`unfinished`)
                    self.backoff.ending_refused(manifest, e)
                return False
            self.backoff.cleared()  # whatever the disk refused before, it took this
            return True

    def finish(
        self,
        manifest: Manifest,
        results: Sequence[tuple[Path, bytes]] = (),
        pictures: Sequence[tuple[Path, bytes]] = (),
    ) -> None:
        """Close a job in its final state (idempotent): files, reason, status, notification.
        Under the spool's lock, taken before the board's write order, as everywhere."""
        with self.lock:
            close_job(self, manifest, results, pictures)


def _crashed(manifest: Manifest, lost: str, config: Config) -> tuple[str, str]:
    """The message and details of a job the service died during `max_attempts` times."""
    died, most = manifest.crashes + 1, config.max_attempts
    when = f"around {manifest.started_at}" if manifest.started_at else "for it"
    return (
        f"{lost} ({died} {'time' if died == 1 else 'times'}; max_attempts is {most})",
        f"The input may crash the editor; check the service log {when}, then "
        f"`hotfolder retry {manifest.name}`.",
    )
