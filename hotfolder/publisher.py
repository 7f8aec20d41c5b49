"""The publisher thread: status files and queue.json when anything changed (at most every
PUBLISH_MIN_SECONDS) and at least every HEARTBEAT_SECONDS; then the same view to the
renderers that write more slowly (the page, the metrics textfile), each at most once a
second while things change and with every heartbeat.

Nothing here is on a device's path: slots report into the board's memory and go on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from hotfolder.metrics import Metrics
from hotfolder.page import Page
from hotfolder.status import HEARTBEAT_SECONDS, Board
from hotfolder.view import View

log = logging.getLogger(__name__)

# The publisher rewrites changed status files (progress, positions) at most this often.
PUBLISH_MIN_SECONDS = 0.1
# A renderer writes at most this often while things change (and with every heartbeat).
RENDER_MIN_SECONDS = 1.0


class Renderer(Protocol):
    name: str

    def write(self, view: View) -> None:
        """Write the view out (atomically); raises OSError when the disk refuses."""


class Paced:
    """One renderer, written at most every RENDER_MIN_SECONDS (SPEC: "at most once a second"),
    and with every heartbeat: at once, or as soon as that second is up. Only the last write,
    as the service stops, never waits."""

    def __init__(self, renderer: Renderer, monotonic: Callable[[], float]) -> None:
        self.renderer = renderer
        self.monotonic = monotonic
        self.written_at = -RENDER_MIN_SECONDS
        self.pending: View | None = None
        self.problem: str | None = None  # the last failure, logged once until it changes

    def offer(self, view: View, *, final: bool = False) -> None:
        """A new view: written now if a second has passed since the last write (or `final`),
        else when it has (`due`)."""
        self.pending = view
        if final or self.monotonic() - self.written_at >= RENDER_MIN_SECONDS:
            self.flush()

    def due(self) -> float | None:
        """When the view held back must be written (monotonic), or None."""
        return None if self.pending is None else self.written_at + RENDER_MIN_SECONDS

    def flush(self) -> None:
        view, self.pending = self.pending, None
        if view is None:
            return
        self.written_at = self.monotonic()
        try:
            self.renderer.write(view)
        except Exception as e:
            # A full share or a bad row never stops the status files; the next view tries again.
            problem = f"{type(e).__name__}: {e}"
            if problem != self.problem:
                log.warning("could not write the %s", self.renderer.name, exc_info=True)
            self.problem = problem
            return
        if self.problem is not None:
            log.info("the %s is written again", self.renderer.name)
            self.problem = None


class Publisher:
    def __init__(
        self,
        board: Board,
        *,
        beat: Callable[[], object] = lambda: None,
        renderers: Sequence[Renderer] = (),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.board = board
        self.beat = beat  # extra work with each heartbeat (retention sweep)
        self.monotonic = monotonic
        self.paced = [Paced(renderer, monotonic) for renderer in renderers]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hotfolder-publisher")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.board.changed.set()
        if self._thread is not None:
            self._thread.join()

    def publish(self, *, final: bool = False) -> None:
        """One publish, and the view to every renderer (all of them written now if `final`:
        the service is stopping, and the page must say so)."""
        view = self.board.publish(refresh=final)
        for paced in self.paced:
            # A heartbeat's view is offered like any other: it is always written, within
            # a second.
            paced.offer(view, final=final)

    def _run(self) -> None:
        next_beat = 0.0
        while not self._stop.is_set():
            try:
                now = self.monotonic()
                beat = now >= next_beat
                if beat:
                    next_beat = now + HEARTBEAT_SECONDS
                    self.beat()
                if beat or self.board.changed.is_set():
                    self.publish()
                for paced in self.paced:
                    due = paced.due()
                    if due is not None and now >= due:
                        paced.flush()
            except Exception:
                log.exception("publishing the queue failed; trying again")
            # At most one publish per PUBLISH_MIN_SECONDS; a change after a quiet spell goes
            # out at once.
            self._stop.wait(PUBLISH_MIN_SECONDS)
            wake = min([next_beat, *(d for p in self.paced if (d := p.due()) is not None)])
            self.board.changed.wait(timeout=max(0.0, wake - self.monotonic()))


def publisher_for(board: Board, metrics: Metrics | None) -> Publisher:
    """The service's publisher: the board, then the page and (if configured) the metrics,
    which also count every ending and time every page write."""
    renderers: list[Renderer] = [Page(board.layout)]
    if metrics is not None:
        renderers = [Page(board.layout, timed=metrics.page_write.observe), metrics]
        board.listeners.append(metrics.ended)
    return Publisher(board, beat=board.sweep, renderers=renderers)
