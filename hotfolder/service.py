"""The service: lock the root, recover what a crash left, start the slots, then watch,
admit and dispatch until told to stop."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from hotfolder import __version__, cancels, fsops, signals
from hotfolder.config import Config
from hotfolder.control import ControlDesk
from hotfolder.dispatch import Dispatcher
from hotfolder.editors import Editor
from hotfolder.errors import ConfigError, ServiceLocked, SetupError
from hotfolder.held import FOR_ROOM
from hotfolder.history import History
from hotfolder.housekeeping import Housekeeping, is_paused
from hotfolder.intake import Intake
from hotfolder.jobs import Jobs
from hotfolder.layout import Layout
from hotfolder.metrics import Metrics
from hotfolder.notify import Notifier
from hotfolder.positions import Hold
from hotfolder.publisher import publisher_for
from hotfolder.retries import Selection, retry_selection
from hotfolder.scan import LOOK_AGAIN_SECONDS
from hotfolder.slots.factory import make_slots
from hotfolder.spool import Spool
from hotfolder.state import Phase, ServiceState
from hotfolder.status import HEARTBEAT_SECONDS, Board
from hotfolder.watch import Watcher, choose_observer, filesystem_type, is_network_fs

log = logging.getLogger(__name__)

# Temporary files whose writer is gone are removed at start-up; any older than this too.
STALE_TEMP_SECONDS = 3600.0
# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
# The service's threads mostly wait on the disk: intake makes a few dozen short system calls
# per drop and, with the publisher and the workers' threads busy in Python meanwhile, waited
# up to 5 ms for the GIL after each one (and each fsync thread it starts as long to begin):
# in a burst, intake ran at half the speed it has alone (benchmarks/README.md, issue 14).
GIL_SWITCH_SECONDS = 0.001


def banner(config: Config, config_file: Path | None, observer: str, *, once: bool) -> str:
    """The start-up line of the log: what runs, where, from which configuration."""
    layout = Layout(config.root_path)
    metrics = []
    if config.metrics_textfile is not None:
        metrics.append(f"textfile {config.metrics_textfile}")
    if config.metrics.port is not None:
        metrics.append(f"http://{config.metrics.host}:{config.metrics.port}/metrics")
    return (
        f"hotfolder {__version__} starting: root {layout.root}, "
        f"config {config_file or 'built-in defaults'}, "
        f"editor {config.editor.name} on {', '.join(config.editor.devices)}, "
        f"max_pending {config.max_pending}, "
        f"observer {observer}{' (unused: --once)' if once else ''}, "
        f"metrics {', '.join(metrics) or 'off'}, page {layout.page_path}"
    )


class EditorsUnavailable(SetupError):
    """No slot could load its editor at start-up; the message says why."""


def loading_note(config: Config) -> str:
    """queue.json's `notes.editor` while the slots load their editors."""
    if config.editor.name == "qwen" and config.editor.warms_up:
        return "loading model, then warming up (one edit of the default preset)"
    return "loading model"


@contextlib.contextmanager
def root_lock(layout: Layout) -> Iterator[None]:
    """Hold `.hotfolder/lock` for as long as the service runs; refuse if someone else does."""
    fsops.ensure_dir(layout.private)
    path = layout.lock_path
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise ServiceLocked(
                f"another hotfolder service (pid {holder}) is running on {layout.root}; "
                "stop it first, or use another --root"
            ) from e
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def gil_switch(seconds: float) -> Iterator[None]:
    """Python's thread switch interval set to `seconds` while the service runs."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(min(before, seconds))
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def check_one_filesystem(layout: Layout) -> None:
    """Moves between the queue's folders are renames, which only work on one filesystem."""
    folders = (layout.inbox, layout.pending, layout.processing, layout.archive, layout.failed)
    devices = {folder: os.stat(folder).st_dev for folder in folders}
    if len(set(devices.values())) > 1:
        first = devices[layout.inbox]
        apart = ", ".join(f"{f.name}/" for f, dev in devices.items() if dev != first)
        raise ConfigError(
            f"{apart} is on another filesystem than inbox/; moves between them must be "
            f"renames, so keep inbox/ pending/ processing/ archive/ failed/ on one "
            f"filesystem under {layout.root}"
        )


class Service:
    def __init__(
        self,
        config: Config,
        editor: Editor | None = None,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        config_file: Path | None = None,
    ) -> None:
        """`editor`: run this editor object in a thread (tests); else a process per device.
        `clock` (wall time) and `monotonic` let tests drive time-outs and back-offs.
        `config_file`: where `config` came from, for the start-up banner."""
        self.config = config
        self.config_file = config_file
        self.layout = Layout(config.root_path)
        self.observer_kind = choose_observer(config.observer, self.layout.inbox)
        # Stopped until `run` starts: a command that only publishes says so (see cli._control).
        self.state = ServiceState(phase=Phase.stopped)
        self._stopped_only = False  # a command run with no service (`load_stopped`)
        self.jobs = self._jobs(clock, monotonic)
        self.board = self.jobs.board
        self.spool = self.jobs.spool
        self.dispatcher = Dispatcher(
            self.jobs,
            config,
            lambda listener: make_slots(config, listener, editor=editor, note=self._executor),
            ready=lambda: not self.state.paused,
            monotonic=monotonic,
        )
        self.intake = Intake(
            self.layout,
            config,
            self.jobs,
            clock=clock,
            on_admit=self.dispatcher.wake.set,
            on_cancel=self.jobs.cancel,
            hold=lambda: self.state.get("disk"),
        )
        self.controls = ControlDesk(
            self.layout,
            {
                "cancel": lambda request: self.intake.cancel(
                    cancels.job_named(self.jobs, str(request["name"]))
                ),
                "retry": lambda request: retry_selection(
                    self.jobs, config, self.intake.layers, Selection.from_request(request)
                ),
            },
        )
        self.housekeeping = Housekeeping(
            self.layout,
            self.jobs,
            self.dispatcher,
            self.controls,
            self.state,
            min_free_bytes=config.min_free_bytes,
        )
        self.metrics = Metrics(config) if config.metrics.textfile or config.metrics.port else None
        self.publisher = publisher_for(self.board, self.metrics)
        self.watcher: Watcher | None = None
        self._signals = 0
        self._wake = threading.Event()
        # A job leaving the queue makes room for a held drop: the loop takes it at once.
        self.jobs.on_left = self._wake.set

    def _jobs(self, clock: Callable[[], float], monotonic: Callable[[], float]) -> Jobs:
        """The owner of job state with its disk (spool) and its view (board, history)."""
        fsops.ensure_dir(self.layout.private)
        self.history = History(
            self.layout.private / "history.db",
            network=is_network_fs(filesystem_type(self.layout.root)),
        )
        board = Board(
            self.layout,
            self.config,
            state=self.state,
            observer=lambda: self.observer_kind,
            # No workers while a command runs with no service (`load_stopped`).
            workers=lambda: [] if self._stopped_only else self.dispatcher.workers(),
            slots=lambda: len(self.dispatcher.slots),
            clock=clock,
            monotonic=monotonic,
            history=self.history,
        )
        self.notifier = Notifier(allowed_hosts=self.config.notify.allowed_hosts)
        return Jobs(
            self.layout,
            self.config,
            Spool(self.layout),
            board,
            self.state,
            notifier=self.notifier,
            clock=clock,
            monotonic=monotonic,
        )

    def _executor(self, text: str | None) -> None:
        """queue.json's `executor` note: a Ray cluster away or full."""
        if self.state.note("executor", text):
            self.board.changed.set()

    # --- start-up ---

    def recover(self) -> None:
        """Remove dead writers' temporary files, then let Jobs finish or requeue the rest."""
        for folder in (
            self.layout.pending,
            self.layout.processing,
            self.layout.outbox,
            self.layout.archive,
            self.layout.failed,
            self.layout.private,
        ):
            removed = fsops.remove_stale_temps(folder, STALE_TEMP_SECONDS)
            if removed:
                log.info("removed %d temporary file(s) left in %s", removed, folder)
        self.jobs.recover()
        self.state.paused = is_paused(self.layout)
        self.board.publish(refresh=True)

    def load_stopped(self) -> None:
        """The queue as it is on disk, for a command run while no service runs (`cancel`,
        `retry`): jobs, positions, waits and pause as a start would show them, nothing
        changed on disk (what a crash left is the next start's to recover)."""
        self._stopped_only = True
        self.spool.load()
        self.board.load_finished()
        for manifest in self.spool.queued():
            self.board.queued(manifest)
        # The drops waiting in inbox/, as the service showed them (those held for room in
        # their places in the queue); left for a cancel to take (`Arrivals.left_waiting`).
        for status in self.board.take_leftovers(keep=True).values():
            held = status.detail == FOR_ROOM
            self.board.waiting(
                status, Hold.shown(status, self.config.default_preset) if held else None
            )
        self.state.paused = is_paused(self.layout)

    def _start_slots(self) -> None:
        """Start every slot and wait for its editor (minutes for the real model) while the
        publisher keeps queue.json's heartbeat; stop start-up if none could load."""
        self.dispatcher.start()
        notes = self.dispatcher.wait_loaded()
        self.state.note("editor", None)
        if self.dispatcher.stopping.is_set():
            return  # told to stop while the editors loaded: a clean stop, not a failure
        broken = {name: note for name, note in notes.items() if note is not None}
        # A Ray cluster that is away or full is waited for (executor note), not a bad setup.
        if broken and len(broken) == len(notes) and self.state.get("executor") is None:
            raise EditorsUnavailable(next(iter(broken.values())))
        for name, note in broken.items():
            log.error("slot %s is not available: %s; the others go on", name, note)

    # --- running ---

    def _on_signal(self, signum: int) -> None:
        # On the signal thread (hotfolder.signals), never inside the main thread's handler.
        self._signals += 1
        self.state.phase = Phase.stopping
        self.board.changed.set()
        if self._signals == 1:
            log.info("signal %d: finishing the jobs in flight, then stopping", signum)
            self.dispatcher.stop()
        else:
            log.info("signal %d again: the jobs in flight go back to the queue", signum)
            self.dispatcher.stop(abort=True)
        self._wake.set()

    def run(self, once: bool = False) -> int:
        self.layout.create()
        check_one_filesystem(self.layout)
        with (
            root_lock(self.layout),
            gil_switch(GIL_SWITCH_SECONDS),
            signals.handled(self._on_signal),
        ):
            self.state.phase = Phase.starting
            log.info("%s", banner(self.config, self.config_file, self.observer_kind, once=once))
            if self.metrics is not None:
                self.metrics.start()  # a bad textfile folder or a taken port: exit 2, now
            self.state.note("editor", loading_note(self.config))
            self.notifier.start()
            self.publisher.start()
            failure: BaseException | None = None
            try:
                self.recover()
                self._start_slots()
                if self.state.phase == Phase.starting:
                    self.state.phase = Phase.running
                    self.board.changed.set()
                if once:
                    self._drain()
                else:
                    self._serve()
            except BaseException as e:
                failure = e
                raise
            finally:
                self.state.phase = Phase.stopping
                self.dispatcher.stop()
                self.dispatcher.join()
                if self.watcher is not None:
                    self.watcher.stop()
                self._stopped(failure)
        log.info("stopped")
        return 0

    def _stopped(self, failure: BaseException | None) -> None:
        """The last word in queue.json and on the page: stopped, and why if it failed."""
        self.publisher.stop()
        self.state.phase = Phase.stopped
        self.state.clear_notes()
        if failure is not None and not isinstance(failure, KeyboardInterrupt | SystemExit):
            self.state.note("service", f"stopped: {failure}")
        try:
            self.publisher.publish(final=True)
        finally:
            if self.metrics is not None:
                self.metrics.stop()
            self.history.close()
            self.notifier.stop()

    def _drain(self) -> None:
        """Burst mode: handle what is in inbox/ now, work the queue empty, return."""
        while not self.dispatcher.stopping.is_set():
            self.intake.tick()
            self.housekeeping.tick()
            self.dispatcher.wake.set()
            # One look at the queue under its lock: a claim cannot slip between the two.
            with self.jobs.lock:
                queued, running = self.jobs.queued(), self.jobs.in_flight()
            stuck = self.state.paused or not self.jobs.can_dispatch()
            watching = self.intake.busy() and not (stuck and self.intake.only_held())
            if not watching and not running and self.dispatcher.idle() and (not queued or stuck):
                break
            self._wake.wait(timeout=0.05)
            self._wake.clear()

    def _serve(self) -> None:
        self.watcher = Watcher(
            self.layout.inbox,
            self.config.observer,
            self._note,
            self.config.poll_interval_seconds,
            written=self.intake.writers.event,
        )
        self.observer_kind = self.watcher.kind
        self.watcher.start()
        next_check = 0.0
        while not self.dispatcher.finished():
            if not self.dispatcher.stopping.is_set():
                self.intake.tick()
                self.housekeeping.tick()
            else:
                self.dispatcher.check()
            now = time.monotonic()
            if now >= next_check and not self.dispatcher.stopping.is_set():
                next_check = now + HEARTBEAT_SECONDS
                self.watcher.check()
            self._wake.wait(timeout=self._interval(next_check))
            self._wake.clear()

    def _interval(self, next_check: float) -> float:
        """How long the loop may sleep: until the next file settles, check or rescan."""
        tracked = len(self.intake.tracker)
        if self.intake.behind:
            return 0.0  # the tick ran out of time with work left: go on at once
        if self.dispatcher.stopping.is_set():
            return 0.1
        if tracked and self.intake.only_held():
            # Held drops wait for room, and a job leaving the queue wakes the loop: between,
            # a look a second (scan.LOOK_AGAIN_SECONDS) is all they need.
            interval = LOOK_AGAIN_SECONDS
        elif tracked:
            # Wake the moment the next file settles: pickup latency is settle_seconds plus a
            # few milliseconds, not plus a polling period. Past 1,000 files a tick costs
            # more, so the loop comes back at most every 0.1 s, and at least every second;
            # a burst of 1,000 pairs is still taken the moment it settles (issue 14: it
            # waited up to a second).
            interval = 0.1 if tracked < 1000 else 1.0
            due = self.intake.seconds_to_next_settle()
            if due is not None:
                soonest = 0.0 if tracked < 1000 else 0.1
                interval = min(interval, max(soonest, due + 0.002))
        else:
            interval = self.config.poll_interval_seconds
        # Whatever poll_interval_seconds says, wake for the next check and rescan.
        return min(
            interval,
            max(0.0, next_check - time.monotonic()),
            self.intake.seconds_to_rescan(),
        )

    def _note(self, path: str) -> None:
        self.intake.note(Path(path))
        self._wake.set()
