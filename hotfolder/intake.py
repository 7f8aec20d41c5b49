"""From files in inbox/ to jobs in pending/: settle, pair, validate, admit — or reject.

The watcher only tells us which paths changed (`note`); everything else happens
in `tick`, on one thread, with the clock and lstat injectable, so tests can
drive it step by step. A periodic full rescan catches whatever events were lost.

The rules live next door: `names` (junk and kinds), `scan` (the walk, and which paths a
tick looks at), `looking` (each path checked and filed into its drop's group), `settle`,
`probes` (is the image whole), `defaults` (`_defaults.yaml` layers), `pairing` (what
a group of files comes to), `records` (the manifest or rejection it becomes) and
`budget`, `arrivals` (the `waiting` statuses of drops not decided yet) and `held` (room in
the queue, and the drops that wait in inbox/ for it under `overflow: hold`). Intake wires
them and is the only one that acts: `_place` (through `admissions`, which writes a tick's
jobs as one batch) and `_reject` are where job state changes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Final

from hotfolder import cancels, fsops
from hotfolder.admissions import Admissions
from hotfolder.arrivals import FOR_DISK, Arrivals
from hotfolder.budget import TickBudget
from hotfolder.config import Config
from hotfolder.defaults import FolderDefaults, Layer
from hotfolder.errors import Reason, Rejected, Repeats
from hotfolder.held import FOR_ROOM, Held, Room, cancel_left
from hotfolder.jobs import Jobs
from hotfolder.layout import Layout
from hotfolder.looking import GroupKey, Looking
from hotfolder.names import fold, kind_of, split_name
from hotfolder.order import station_of
from hotfolder.pairing import Group, Pairing, Ready, Refusal, Waiting
from hotfolder.positions import Hold
from hotfolder.probes import ImageProbes
from hotfolder.records import copies_for, manifest_for, rejection_for
from hotfolder.scan import Sightings
from hotfolder.settle import StabilityTracker
from hotfolder.sidecar import JobSpec
from hotfolder.takennames import TakenNames
from hotfolder.writers import Writers

# The service imports the name helpers from here.
__all__ = ["TICK_BUDGET_SECONDS", "Intake", "kind_of", "split_name"]

log = logging.getLogger(__name__)

# How long one tick may spend deciding, admitting and rejecting before it yields to the loop
# (heartbeat, controls); what is left waits for the next tick. 10,000 files dropped at once
# take many ticks, and the service stays responsive throughout.
TICK_BUDGET_SECONDS: Final = 1.0
# With fewer jobs than this queued, a drop's job is likely claimed at once: intake keeps the
# image it decoded to check it, for the worker (decoded.py), instead of a second decode.
KEEP_DECODED_BELOW: Final = 2


class Intake:
    def __init__(
        self,
        layout: Layout,
        config: Config,
        jobs: Jobs,
        *,
        clock: Callable[[], float] = time.time,
        lstat: Callable[[Path], os.stat_result] = os.lstat,
        on_admit: Callable[[], None] = lambda: None,
        on_cancel: Callable[[str], tuple[bool, str]] = lambda name: (True, ""),
        hold: Callable[[], str | None] = lambda: None,
        tick_budget_seconds: float = TICK_BUDGET_SECONDS,
    ) -> None:
        self.layout = layout
        self.config = config
        self.jobs = jobs
        self.clock = clock
        self.on_admit = on_admit
        self.on_cancel = on_cancel
        # Says why admission must wait (e.g. the disk is nearly full); ready pairs stay put.
        self.hold = hold
        self.tracker = StabilityTracker(config.settle_seconds)
        self.writers = Writers(layout.inbox, config.writer_wait_seconds, clock=clock)
        self.probes = ImageProbes(
            config.limits,
            incomplete_image_seconds=config.incomplete_image_seconds,
            lstat=lstat,
            decoded=jobs.decoded,
            keep=lambda: jobs.pending_count() < KEEP_DECODED_BELOW,
        )
        self.defaults = FolderDefaults(layout.inbox, max_bytes=config.limits.max_sidecar_bytes)
        self.pairing = Pairing(config, self.tracker, self.probes, self.defaults)
        self.arrivals = Arrivals(jobs, TakenNames(layout, jobs.spool.names))
        self.held = Held()
        self.sightings = Sightings(
            layout.inbox, config.rescan_interval_seconds, partial(jobs.state.note, "intake")
        )
        self._errors = Repeats(log)
        self._cancels: list[Path] = []  # settled cancel files, acted on at the tick's end
        self.budget = TickBudget(tick_budget_seconds)
        self.admissions = Admissions(jobs, forget=self._forget, on_admit=on_admit)
        self.looking = Looking(
            layout.inbox,
            self.tracker,
            self.writers,
            self.defaults,
            self.budget,
            reject=self._reject,
            cancel=self._cancel,
            forget=self._forget,
            lstat=lstat,
        )

    # --- for the watcher (any thread) and the service loop ---

    def note(self, path: str | Path) -> None:
        self.sightings.note(Path(path))

    def seconds_to_next_settle(self) -> float | None:
        """Seconds until the next tracked file settles, so the loop can wake just then."""
        now = self.clock()
        moment = self.tracker.next_settle(now)
        return None if moment is None else moment - now

    def seconds_to_rescan(self) -> float:
        """How long until the next periodic full rescan of inbox/ is due."""
        return self.sightings.seconds_to_rescan(self.clock())

    def busy(self) -> bool:
        """Whether a dropped file is still watched (settling, unpaired, or held for room)."""
        return len(self.tracker) > 0

    def only_held(self) -> bool:
        """Whether every file still watched belongs to a drop held for room in the queue."""
        return len(self.held) > 0 and self.held.files() >= len(self.tracker)

    @property
    def unreachable(self) -> str | None:
        """Why intake is paused (inbox/ cannot be read), or None."""
        return self.sightings.unreachable

    @property
    def behind(self) -> bool:
        """Whether the last tick left work undone for lack of time (the loop comes back at once)."""
        return self.budget.behind

    def layers(self, image: Path) -> list[Layer] | Rejected:
        """The `_defaults.yaml` layers that apply to an image at this path, farthest first
        (looked for afresh: this is asked between ticks, by `retry`)."""
        self.defaults.new_tick()
        return self.defaults.layers(image)

    # --- the loop body ---

    def tick(self) -> None:
        now = self.clock()
        if not self.sightings.reachable():
            return
        if self.sightings.came_back():
            self.tracker.restart(now)  # the time it was away counts towards no wait
        paths, quiet = self.sightings.take(now, self.tracker)
        self.defaults.new_tick()
        self.budget.behind = False
        self.budget.start()
        groups = self.looking.groups(paths, quiet, now)
        self.budget.start()
        if self._decide_oldest_first(groups, now):
            self.on_admit()
        self._act_on_cancels()
        present = set(groups)
        self.arrivals.sweep(present, self.looking.stems(groups))
        self.held.sweep(present)

    # --- deciding and acting ---

    def _decide_oldest_first(self, groups: dict[GroupKey, Group], now: float) -> bool:
        """Decide every group and act on it at once; return whether anything was admitted.

        Pairs admitted together go in the order of their images' mtime, then name. Deciding
        in that order and admitting each at once keeps it, and lets a tick that runs out of
        time stop anywhere: the rest stay tracked and come first in the next tick.
        """

        def oldest_first(entry: tuple[GroupKey, Group]) -> tuple[float, int, str]:
            # Drops held for room first, in the order they were held (held.Held.since).
            mtime_ns, path = entry[1].first()
            since = self.held.since(entry[0])
            return (since if since is not None else now), mtime_ns, self.looking.relative(path)

        for_disk: bool | None = None
        room = Room(self.jobs, self.config)
        admitted = False
        for key, group in sorted(groups.items(), key=oldest_first):
            # A drop held for room was validated already; only a change decides it again. One
            # that still finds no room costs no budget, so newer drops are never starved.
            if self.held.waits(key, group, room):
                continue
            if self.budget.spent():
                break
            self.budget.used()
            try:
                current = self._as_now(key, group, now, room)
                if current is None:
                    continue
                stem = split_name(current.first()[1].name)[0]
                ready = self.held.ready(key)
                outcomes = [ready] if ready else self.pairing.decide(stem, current, now)
                for outcome in outcomes:
                    if isinstance(outcome, Refusal):
                        self._reject(outcome, key=key)
                        continue
                    if isinstance(outcome, Waiting):
                        self._waiting(key, outcome.files, outcome.detail, now)
                        continue
                    if for_disk is None:
                        for_disk = self.hold() is not None
                    if for_disk:
                        self._waiting(key, outcome.files, FOR_DISK, now)
                    else:
                        admitted = self._place(outcome, now, key, room, current) or admitted
            except Exception as e:
                # One bad file never stops the loop: it is retried next tick.
                self._errors.log(key, e, "intake: error while handling {}/{}".format(*key))
        return self.admissions.write() or admitted

    def _as_now(self, key: GroupKey, group: Group, now: float, room: Room) -> Group | None:
        """The group to decide: as its files are now where some were filed as an earlier
        tick left them (None: they are gone, or it is a held drop that still waits)."""
        if not (group.quiet and group.all_settled()):
            return group  # as looked at this tick; or still settling: waiting either way
        current = self.looking.again(key, group, now)
        if current is None or self.held.waits(key, current, room):
            return None
        return current

    def _waiting(self, key: GroupKey, files: tuple[Path, ...], detail: str, now: float) -> None:
        """Show a drop that is not decided yet as `waiting`, with what for."""
        # Named after its file as dropped (the key's stem is folded to lower case and NFC).
        first = files[0]
        relative = self.looking.relative(first.parent / split_name(first.name)[0])
        self.arrivals.show(key, relative, self.looking.relative(files[0]), detail, now)

    def _place(self, item: Ready, now: float, key: GroupKey, room: Room, group: Group) -> bool:
        """Admit a ready pair; past the cap (or its station's), hold it in inbox/ under
        `overflow: hold`, else refuse it as `queue_full`. Whether it was admitted."""
        relative = self.looking.relative(item.image)
        station, stem = station_of(relative), split_name(relative)[0]
        if self.config.overflow == "hold" and room.full(station) is not None:
            since = self.held.since(key) or now
            hold = Hold.of(item, relative, since)
            self.arrivals.show(key, stem, relative, FOR_ROOM, now, hold=hold)
            self.held.keep(key, item, group, self.arrivals.peek(key, stem), since)
            return False
        full = room.refusal(item, station)
        if full is not None:
            self._reject(full, spec=item.spec, key=key)
            return False
        admitting = self.jobs.spool.admitting()
        seen = self.arrivals.peek(key, stem) or self.arrivals.unseen(stem, now, admitting)
        if not seen.carried:
            # Its status file would not fit the filesystem: refused under a shortened name.
            message = "the name is too long for the filesystem once hotfolder adds its endings"
            refusal = Refusal(item.files, Reason.unsupported_type, message)
            self._reject(refusal, spec=item.spec, key=key)
            return False
        seq = self.jobs.spool.next_seq()
        manifest = manifest_for(
            item, layout=self.layout, relative=relative, seq=seq, now=now, seen=seen
        )
        # Counted at once, written with the tick's other admissions; then its files are let go.
        done = partial(self.arrivals.done, key, stem)
        self.admissions.add(manifest, item.files, copies_for(item, manifest), then=done)
        self.held.release(key)
        room.took(station)
        return True

    # --- the only places where intake asks for a change of job state ---

    def _reject(
        self, refusal: Refusal, *, spec: JobSpec | None = None, key: GroupKey | None = None
    ) -> None:
        """Move a drop to failed/ with its reason file and a failed status; never loses a file."""
        spec = spec or refusal.spec
        relative = self.looking.relative(refusal.files[0])
        now = self.clock()
        record = rejection_for(
            refusal,
            layout=self.layout,
            relative=relative,
            spec=spec,
            now=now,
            seen=None if key is None else self.arrivals.peek(key, split_name(relative)[0]),
            reserved=self.arrivals.reserved,
            names=self.arrivals.names,
        )
        self.jobs.reject(record)
        if key is not None:
            self.arrivals.done(key, split_name(relative)[0])
            self.held.release(key)
        for path in refusal.files:
            self._forget(path)
        log.warning("rejected %s: %s: %s", relative, refusal.code.value, refusal.message)

    def _cancel(self, path: Path) -> None:
        """A settled NAME.cancel: acted on at the end of the tick, once the tick's drops are
        decided (a drop held for room is held by then: found in inbox/ at start-up with its
        cancel file, it was refused as "waiting" and edited later; an operator-day test)."""
        self._cancels.append(path)

    def _act_on_cancels(self) -> None:
        if not self._cancels:
            return  # every tick: no pass over the waiting drops' names for nothing
        paths, self._cancels = list(dict.fromkeys(self._cancels)), []
        arriving = {fold(name) for name in self.arrivals.reserved}
        for path in paths:
            relative = self.looking.relative(path)
            if cancels.act(
                self.jobs,
                self.layout,
                relative,
                self.cancel,
                arriving=lambda n: fold(n) in arriving,
            ):
                fsops.remove(path)
                self._forget(path)

    def cancel(self, name: str) -> tuple[bool, str]:
        """Cancel job `name`: a drop held for room goes to failed/ now; a job, by `on_cancel`."""
        found = self.held.cancel(name)
        if found is not None:
            key, item, refusal, shown = found
            self._reject(refusal, spec=item.spec, key=key)
            return True, f"{shown} cancelled; its files are in failed/"
        done, message = self.on_cancel(name)
        # With the service stopped (`hotfolder cancel`), no tick has seen the held drops yet.
        earlier = None if done else self.arrivals.left_waiting(name, FOR_ROOM)
        left = None if earlier is None else cancel_left(self.layout.inbox, *earlier)
        if earlier is None or left is None:
            return done, message
        self._reject(left[1], key=left[0])
        return True, f"{earlier[1]} cancelled; its files are in failed/"

    # --- helpers ---

    def _forget(self, path: Path) -> None:
        self.looking.dropped(path)
        self.tracker.forget(path)
        self.probes.forget(path)
        self.writers.forget(path)
