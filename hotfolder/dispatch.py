"""From the queue to the slots and back: dispatch in queue order, collect outcomes.

Three stages, each on its own thread, joined by queues (no stage holds another's lock):
a decoder reads and decodes the next jobs' images ahead of time; the dispatcher hands
the head of the queue to whichever slot's device is free; a finisher writes each
outcome (result, archive, status) through `Jobs`. So a device never waits for the disk
or an image codec. The dispatcher also watches for hung slots.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hotfolder import exifdata, images, recovery, thumbs
from hotfolder.config import Config
from hotfolder.errors import Reason, Rejected
from hotfolder.jobs import RESULT_SUFFIXES, Jobs
from hotfolder.sidecar import JobSpec
from hotfolder.slots.base import Outcome, Pixels, Slot, Ticket
from hotfolder.spool import JobState, Manifest

log = logging.getLogger(__name__)

# How long past its time limit a job may go without an outcome before its slot is killed
# (an edit that still reports progress stops itself at its limit; one that hangs cannot).
HUNG_GRACE_SECONDS = 5.0
# busy_ratio in queue.json: the share of this window (or of the uptime, if shorter) spent editing.
BUSY_WINDOW_SECONDS = 600.0


def make_ticket(
    config: Config, jobs: Jobs, manifest: Manifest, decoded: FromIntake | None = None
) -> Ticket:
    """The job's ticket, from its image as intake decoded it (`decoded`: taken already, else
    taken now), or read and decoded now, wherever in the spool it is."""
    spec = JobSpec.model_validate(manifest.spec)
    preset = config.presets.get(spec.preset)
    if preset is None:
        raise Rejected(
            Reason.invalid_sidecar,
            f"preset {spec.preset!r} is no longer configured",
            "Choose one of: " + ", ".join(sorted(config.presets)),
        )
    if manifest.references and config.editor.pipeline != "edit-plus":
        raise Rejected(
            Reason.invalid_sidecar,
            f"the job has reference images (images:) but the service now runs editor.pipeline: "
            f"{config.editor.pipeline}, which takes one image",
            "Switch editor.pipeline back to edit-plus and retry the job, or remove `images:`.",
        )
    source = (decoded or _decoded(jobs, manifest)).source
    if source is None:
        path = _spooled(jobs, manifest, manifest.image)
        source = images.load_for_edit(path, limits=config.limits)
    references = tuple(
        Pixels.of(
            images.load_for_edit(_spooled(jobs, manifest, ref.file), limits=config.limits).image
        )
        for ref in manifest.references
    )
    return Ticket.with_image(
        source.image,
        job_id=manifest.job_id,
        name=manifest.name,
        icc_profile=source.icc_profile,
        instruction=spec.instruction,
        seed=manifest.seed,
        preset_name=spec.preset,
        preset=preset,
        steps=spec.steps or preset.steps,
        true_cfg_scale=(
            spec.true_cfg_scale if spec.true_cfg_scale is not None else preset.true_cfg_scale
        ),
        negative_prompt=(
            spec.negative_prompt if spec.negative_prompt is not None else preset.negative_prompt
        ),
        output_format=images.result_format(spec.output.format, source.format),
        output_quality=spec.output.quality,
        output_size=spec.output.size,
        timeout_seconds=preset.timeout_seconds,
        original_size=source.original_size,
        exif=source.exif if spec.output.keep_gps else exifdata.without_gps(source.exif),
        metadata={
            "instruction": spec.instruction,
            "preset": spec.preset,
            "seed": str(manifest.seed),
            "job_id": manifest.job_id,
            "software": "hotfolder",
        },
        references=references,
    )


@dataclass(frozen=True)
class FromIntake:
    """A job's image as intake decoded it (none if it was not kept), and its 'before'
    thumbnail being made."""

    source: images.SourceImage | None = None
    before: Future[bytes | None] | None = None


def _decoded(jobs: Jobs, manifest: Manifest) -> FromIntake:
    """The job's image as intake decoded it moments ago if the queue was short (decoded.py),
    with its 'before' thumbnail under way; else nothing."""
    kept = jobs.decoded.take(_spooled(jobs, manifest, manifest.image))
    return FromIntake() if kept is None else FromIntake(kept.source, kept.before)


def _spooled(jobs: Jobs, manifest: Manifest, file_name: str) -> Path:
    """One of the job's files, wherever in the spool it is now."""
    layout, spool = jobs.layout, jobs.spool
    path = spool.path_in(layout.processing, manifest, file_name)
    if not path.exists():
        path = spool.path_in(layout.pending, manifest, file_name)
    return path


@dataclass(frozen=True)
class Prepared:
    """A decoded ticket and, when it was decoded ahead, the page's 'before' thumbnail (or,
    when intake decoded it, that thumbnail being made)."""

    ticket: Ticket
    before: bytes | None = None
    before_ahead: Future[bytes | None] | None = None


def prepare(config: Config, jobs: Jobs, manifest: Manifest, *, thumbnail: bool) -> Prepared:
    decoded = _decoded(jobs, manifest)
    ticket = make_ticket(config, jobs, manifest, decoded)
    if decoded.before is not None:
        return Prepared(ticket, before_ahead=decoded.before)
    before = thumbs.make(ticket.image(), ticket.icc_profile) if thumbnail else None
    return Prepared(ticket, before)


class Prefetcher:
    """Decodes the next jobs' images on a thread of its own, before a slot asks for them;
    the thumbnail is made there too. A job not decoded ahead is decoded at once, without
    one (the finisher makes it), so the device waits for no thumbnail."""

    def __init__(self, decode: Callable[[Manifest, bool], Prepared]) -> None:
        self._decode = decode
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hotfolder-decode")
        self._ahead: dict[tuple[str, str], Future[Prepared]] = {}

    def warm(self, upcoming: list[Manifest]) -> None:
        keys = {(m.job_id, m.name): m for m in upcoming}
        for key in list(self._ahead):
            if key not in keys:
                self._ahead.pop(key).cancel()
        for key, manifest in keys.items():
            if key not in self._ahead:
                self._ahead[key] = self._pool.submit(self._decode, manifest, True)

    def take(self, manifest: Manifest) -> Prepared:
        """The job's ticket: decoded ahead if it was, else now. Raises what decoding raises."""
        future = self._ahead.pop((manifest.job_id, manifest.name), None)
        if future is not None:
            try:
                return future.result()
            except (OSError, Rejected, images.IncompleteImage):
                pass  # read while the claim moved the file, or changed since: read it again
            except Exception:
                log.debug("decoding %s ahead failed; decoding again", manifest.name)
        return self._decode(manifest, False)

    def before_ahead(self, prepared: Prepared) -> Future[bytes | None] | None:
        """The page's 'before' thumbnail being made, if it was not made with the decode: by
        intake's (decoded.py), or now from the ticket's pixels on the decoder's thread (idle
        while the queue is short: the only time a job is not decoded ahead)."""
        if prepared.before is not None or prepared.before_ahead is not None:
            return prepared.before_ahead
        ticket = prepared.ticket
        try:
            return self._pool.submit(lambda: thumbs.make(ticket.image(), ticket.icc_profile))
        except RuntimeError:  # shut down: the finisher makes it
            return None

    def close(self) -> None:
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
        self._pool.shutdown(wait=True)


@dataclass
class Flight:
    """A job handed to a slot."""

    name: str
    slot: Slot
    extension: str  # of the result file, from the job's output format
    timeout_seconds: float
    deadline: float  # monotonic; past it without an outcome, the slot is hung
    before: bytes | None = None  # the 'before' thumbnail, if it was made with the decode
    # Else it is being made from the decoded pixels while the slot edits (`Prefetcher.thumbnail`)
    before_ahead: Future[bytes | None] | None = None
    ticket: Ticket | None = None  # with those pixels, for the finisher if that was not begun
    editing: bool = True
    hung: bool = False


def thumbnails(jobs: Jobs, flight: Flight, outcome: Outcome) -> list[tuple[Path, bytes]]:
    """The page's pictures, for the job's ending to write before the final status that shows
    them: the 'before' made from the decoded pixels, the 'after' made with the encode."""
    before = flight.before
    ahead = flight.before_ahead
    # Not begun yet (the decoder is busy with the next job): made here instead, not waited for.
    if before is None and ahead is not None and not ahead.cancel():
        with contextlib.suppress(CancelledError):
            before = ahead.result()
    if before is None and flight.ticket is not None:
        before = thumbs.make(flight.ticket.image(), flight.ticket.icc_profile)
    pictures = {"before": before, "after": outcome.thumbnail}
    return [
        (jobs.layout.thumb_path(flight.name, kind), data) for kind, data in pictures.items() if data
    ]


@dataclass
class Busy:
    """Editing intervals of one slot over the last BUSY_WINDOW_SECONDS."""

    since: float
    spans: deque[tuple[float, float]] = field(default_factory=deque)
    editing_since: float | None = None

    def ratio(self, now: float) -> float:
        start = max(self.since, now - BUSY_WINDOW_SECONDS)
        while self.spans and self.spans[0][1] < start:
            self.spans.popleft()
        spans = [*self.spans]
        if self.editing_since is not None:
            spans.append((self.editing_since, now))
        busy = sum(max(0.0, end - max(begin, start)) for begin, end in spans)
        return round(busy / (now - start), 3) if now > start else 0.0


class Dispatcher:
    """Hands queued jobs to free slots in queue order and brings the outcomes back."""

    def __init__(
        self,
        jobs: Jobs,
        config: Config,
        make_slots: Callable[[Dispatcher], list[Slot]],
        *,
        ready: Callable[[], bool] = lambda: True,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs = jobs
        self.config = config
        self.ready = ready  # False while paused
        self.monotonic = monotonic
        self.slots = make_slots(self)
        self.prefetch = Prefetcher(lambda m, ahead: prepare(config, jobs, m, thumbnail=ahead))
        self.wake = threading.Event()
        self.stopping = threading.Event()  # take no more jobs; finish those in flight
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}  # by job id
        # Hand-overs under way: a job claimed (no longer queued) but not yet a flight. While
        # one is, the dispatcher is not idle, so `run --once` cannot stop in between.
        self._handing = 0
        self._busy = {slot.name: Busy(since=monotonic()) for slot in self.slots}
        self._notes: dict[str, str | None] = {slot.name: "starting" for slot in self.slots}
        self._outcomes: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        jobs.stop_running = self._cancel_running
        jobs.on_queued = self.wake.set

    # --- lifecycle ---

    def start(self) -> None:
        for slot in self.slots:
            slot.start()
        for target, name in ((self._dispatch_loop, "dispatch"), (self._finish_loop, "finish")):
            thread = threading.Thread(target=target, name=f"hotfolder-{name}")
            thread.start()
            self._threads.append(thread)

    def wait_loaded(self, timeout: float | None = None) -> dict[str, str | None]:
        """Until every slot is ready or has said why it cannot be; the slots' notes."""
        deadline = None if timeout is None else self.monotonic() + timeout
        while any(note == "starting" for note in self.notes().values()):
            if self.stopping.is_set() or (deadline is not None and self.monotonic() > deadline):
                break
            time.sleep(0.02)
        return self.notes()

    def notes(self) -> dict[str, str | None]:
        with self._lock:
            return dict(self._notes)

    def stop(self, abort: bool = False) -> None:
        """Take no more jobs; with `abort`, the jobs in flight stop and go back to the queue."""
        self.stopping.set()
        if abort:
            for slot in self.slots:
                slot.abort()
        self.wake.set()

    def idle(self) -> bool:
        """No job in flight, and none being handed over (ask after looking at the queue)."""
        with self._lock:
            return not self._flights and not self._handing

    def finished(self) -> bool:
        """Stopping and nothing left in flight (the service may exit)."""
        return self.stopping.is_set() and not self._dispatching() and self.idle()

    def _dispatching(self) -> bool:
        return bool(self._threads) and self._threads[0].is_alive()

    def join(self) -> None:
        """After `stop`: wait for the jobs in flight, then shut the slots and threads down."""
        # The dispatch thread ends first: a hand-over it had begun is then in flight.
        if self._threads:
            self._threads[0].join()
        while not self.idle():
            self.check()  # a slot that hangs now must not hold the service up for good
            self.wake.wait(0.1)
            self.wake.clear()
        for slot in self.slots:
            slot.stop()
        for slot in self.slots:
            slot.join()
        self._outcomes.put(None)
        for thread in self._threads:
            thread.join()
        self.prefetch.close()

    # --- dispatching ---

    def _dispatch_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.dispatch()
            except Exception:
                log.exception("dispatch failed; trying again")
            self.wake.wait(timeout=0.5)
            self.wake.clear()

    def dispatch(self) -> int:
        """Give the head of the queue to each free slot; return how many jobs were handed out."""
        handed = 0
        if self.ready() and not self.stopping.is_set():
            for slot in self.slots:
                if slot.ready() and not self._editing(slot) and self._hand(slot):
                    handed += 1
        self.prefetch.warm(self.jobs.upcoming(len(self.slots)))
        return handed

    def _editing(self, slot: Slot) -> bool:
        with self._lock:
            return any(f.slot is slot and f.editing for f in self._flights.values())

    def _hand(self, slot: Slot) -> bool:
        with self._lock:
            self._handing += 1
        try:
            return self._hand_over(slot)
        finally:
            with self._lock:
                self._handing -= 1

    def _hand_over(self, slot: Slot) -> bool:
        if not recovery.finish_unfinished(self.jobs):
            return False
        manifest = self.jobs.claim(slot.name, slot.device)
        if manifest is None:
            return False
        try:
            prepared = self.prefetch.take(manifest)
        except (Rejected, images.IncompleteImage) as e:
            reason = e if isinstance(e, Rejected) else Rejected(Reason.invalid_image, str(e))
            self.jobs.fail(manifest.name, reason.code, reason.message, reason.details)
            return False
        except OSError as e:
            self.jobs.fail(manifest.name, Reason.edit_failed, f"cannot read the image: {e}")
            return False
        ticket = prepared.ticket
        with self._lock:
            self._flights[manifest.job_id] = Flight(
                name=manifest.name,
                slot=slot,
                extension=RESULT_SUFFIXES[ticket.output_format],
                timeout_seconds=ticket.timeout_seconds,
                deadline=self.monotonic() + ticket.timeout_seconds + HUNG_GRACE_SECONDS,
                before=prepared.before,
                # Made from the pixels meanwhile: by intake's, or while the slot edits, on the
                # decoder's thread.
                before_ahead=self.prefetch.before_ahead(prepared),
                ticket=ticket if prepared.before is None else None,
            )
            self._busy[slot.name].editing_since = self.monotonic()
        slot.submit(ticket)
        try:
            # The claim reaches the disk while the device already edits.
            self.jobs.record_claim(manifest.name)
        except OSError as e:
            log.error(
                "cannot record that %s started (%s); tried again when it ends", manifest.name, e
            )
        return True

    def _cancel_running(self, manifest: Manifest) -> None:
        for slot in self.slots:
            if slot.name == manifest.worker:
                slot.cancel(manifest.job_id)

    def check(self) -> None:
        """Kill the slot of a job past its time limit with no outcome (a hung editor)."""
        now = self.monotonic()
        with self._lock:
            overdue = [f for f in self._flights.values() if not f.hung and now > f.deadline]
            for flight in overdue:
                flight.hung = True
        for flight in overdue:
            flight.slot.kill(f"{flight.name} hung past its time limit")

    # --- the slot listener (called on the slots' threads; quick, no disk) ---

    def progress(self, slot: Slot, job_id: str, step: int, steps: int) -> None:
        if self._flight(job_id) is not None:
            self.jobs.progress(job_id, step, steps)

    def edited(self, slot: Slot, job_id: str) -> None:
        with self._lock:
            flight = self._flights.get(job_id)
            if flight is not None:
                flight.editing = False
            self._stop_busy(slot)
        self.wake.set()

    def outcome(self, slot: Slot, outcome: Outcome) -> None:
        flight = self._flight(outcome.job_id)
        if flight is not None:
            self._outcomes.put(lambda: self._settle(flight, outcome))

    def lost(self, slot: Slot, job_ids: list[str], why: str) -> None:
        with self._lock:
            self._stop_busy(slot)
        for job_id in job_ids:
            flight = self._flight(job_id)
            if flight is not None:
                self._outcomes.put(
                    lambda flight=flight, job_id=job_id: self._lose(flight, job_id, why)  # type: ignore[misc]
                )

    def state(self, slot: Slot, note: str | None) -> None:
        with self._lock:
            self._notes[slot.name] = note
        self.jobs.state.note(f"worker {slot.name}", note)
        self.wake.set()

    def _flight(self, job_id: str) -> Flight | None:
        with self._lock:
            return self._flights.get(job_id)

    def _stop_busy(self, slot: Slot) -> None:
        busy = self._busy[slot.name]
        if busy.editing_since is not None:
            busy.spans.append((busy.editing_since, self.monotonic()))
            busy.editing_since = None

    # --- finishing (the finisher thread: all disk work for outcomes) ---

    def _finish_loop(self) -> None:
        while (work := self._outcomes.get()) is not None:
            try:
                work()
            except Exception:
                log.exception("finishing a job failed")
            self.wake.set()

    def _done(self, job_id: str) -> None:
        with self._lock:
            self._flights.pop(job_id, None)

    def _settle(self, flight: Flight, outcome: Outcome) -> None:
        try:
            if outcome.error_code == "stop":
                # The service is stopping, or the slot's executor went away: no attempt lost.
                log.info("%s goes back to the head of the queue: %s", flight.name, outcome.error)
                self.jobs.put_back(flight.name)
                return
            pictures = thumbnails(self.jobs, flight, outcome)
            if outcome.ok:
                assert outcome.data is not None
                self.jobs.complete(flight.name, outcome.data, flight.extension, pictures)
            else:
                code = outcome.error_code or Reason.edit_failed.value
                state = JobState.cancelled if code == Reason.cancelled.value else JobState.failed
                message, details = outcome.error or "", outcome.details
                self.jobs.fail(flight.name, code, message, details, state=state, pictures=pictures)
        finally:
            self._done(outcome.job_id)

    def _lose(self, flight: Flight, job_id: str, why: str) -> None:
        try:
            if flight.hung:
                self.jobs.fail(
                    flight.name,
                    Reason.timeout,
                    f"the edit hung past its time limit ({flight.timeout_seconds:g} s)",
                    "Its slot was restarted; raise the preset's job_timeout_seconds if such "
                    "jobs are expected to take this long.",
                )
            else:
                self.jobs.put_back(flight.name, lost=why)
        finally:
            self._done(job_id)

    # --- for queue.json ---

    def workers(self) -> list[dict[str, Any]]:
        now = self.monotonic()
        with self._lock:
            editing = {f.slot.name: f for f in self._flights.values() if f.editing}
            rows = []
            for slot in self.slots:
                flight = editing.get(slot.name)
                rows.append(
                    {
                        "worker": slot.name,
                        "device": slot.device,
                        "name": flight.name if flight is not None else None,
                        "job_id": next((j for j, f in self._flights.items() if f is flight), None),
                        "busy_ratio": self._busy[slot.name].ratio(now),
                        "state": self._notes.get(slot.name) or ("editing" if flight else "ready"),
                        **slot.info(),
                    }
                )
        return rows
