"""What the service's loop checks every tick besides intake: hung slots, free disk space,
control requests, rejections a refusing disk cut short, and the pause flag."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable

from hotfolder.control import ControlDesk
from hotfolder.dispatch import Dispatcher
from hotfolder.jobs import Jobs
from hotfolder.layout import Layout
from hotfolder.state import ServiceState
from hotfolder.status import HEARTBEAT_SECONDS

log = logging.getLogger(__name__)


def low_disk(layout: Layout, floor: int) -> str | None:
    """Why admission must wait for disk space (below `min_free_bytes`), or None."""
    for folder in (layout.root, layout.outbox):
        try:
            info = os.statvfs(folder)
        except OSError:
            continue
        free = info.f_bavail * info.f_frsize
        if free < floor:
            return (
                f"only {free // 1_000_000} MB free under {folder.name or folder}/, below "
                f"min_free_bytes ({floor // 1_000_000} MB): not admitting new jobs"
            )
    return None


def is_paused(layout: Layout) -> bool:
    return layout.pause_flag.exists()


class Housekeeping:
    def __init__(
        self,
        layout: Layout,
        jobs: Jobs,
        dispatcher: Dispatcher,
        controls: ControlDesk,
        state: ServiceState,
        *,
        min_free_bytes: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.layout = layout
        self.jobs = jobs
        self.dispatcher = dispatcher
        self.controls = controls
        self.state = state
        self.min_free_bytes = min_free_bytes
        self.monotonic = monotonic
        self._next_replay = 0.0

    def tick(self) -> None:
        """Hung slots, disk space, controls, replays, pause."""
        self.dispatcher.check()
        self.low_disk()
        now = self.monotonic()
        if now >= self._next_replay:
            # Rejections cut short by a refusing disk are finished once it takes files again.
            self._next_replay = now + HEARTBEAT_SECONDS
            try:
                self.jobs.replay_rejections()
            except OSError as e:
                log.warning("cannot finish an interrupted rejection yet: %s", e)
        self.controls.poll()
        self.follow_pause()

    def low_disk(self) -> str | None:
        """Why admission must wait for disk space, or None; noted in queue.json on change."""
        note = low_disk(self.layout, self.min_free_bytes)
        if note != self.state.get("disk"):
            self.state.accepting = note is None  # before the note, which wakes the publisher
            self.state.note("disk", note)
            if note is None:
                log.info("disk space is back; admitting again")
            else:
                log.warning("%s", note)
        return note

    def follow_pause(self) -> None:
        """Pause or resume dispatch as `.hotfolder/pause` comes and goes."""
        paused = is_paused(self.layout)
        if paused != self.state.paused:
            self.state.paused = paused
            log.info("service %s", "paused" if paused else "resumed")
            self.jobs.board.changed.set()
            self.dispatcher.wake.set()
