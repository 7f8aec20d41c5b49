"""The service: lock the root, recover what a crash left, then watch, admit and work until told to stop."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from hotfolder import fsops
from hotfolder.config import Config
from hotfolder.editors import Editor, make_editor
from hotfolder.errors import Reason, ServiceLocked
from hotfolder.intake import Intake
from hotfolder.layout import Layout
from hotfolder.spool import FINAL_STATES, JobState, Spool
from hotfolder.status import HEARTBEAT_SECONDS, Board
from hotfolder.watch import Watcher, choose_observer
from hotfolder.worker import Worker

log = logging.getLogger(__name__)

LOCK_NAME = "lock"
PAUSE_NAME = "PAUSE"
# Our temporary files older than this at start-up were left by a crash.
STALE_TEMP_SECONDS = 60.0


@contextlib.contextmanager
def root_lock(layout: Layout) -> Iterator[None]:
    """Hold `.hotfolder/lock` for as long as the service runs; refuse if someone else does."""
    fsops.ensure_dir(layout.private)
    path = layout.private / LOCK_NAME
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


def is_paused(layout: Layout) -> bool:
    return (layout.private / PAUSE_NAME).exists()


class Service:
    def __init__(self, config: Config, editor: Editor | None = None) -> None:
        self.config = config
        self.layout = Layout(config.root_path)
        self.editor = editor if editor is not None else make_editor(config)
        self.observer_kind = choose_observer(config.observer, self.layout.inbox)
        self.spool = Spool(self.layout)
        self.board = Board(self.layout, config, observer=lambda: self.observer_kind)
        self.worker = Worker(
            self.layout,
            config,
            self.spool,
            self.board,
            self.editor,
            paused=lambda: self.board.paused,
        )
        self.intake = Intake(
            self.layout,
            config,
            self.spool,
            self.board,
            on_admit=self.worker.wake.set,
            on_cancel=self.cancel,
        )
        self.watcher: Watcher | None = None
        self._signals = 0
        self._wake = threading.Event()

    # --- controls ---

    def cancel(self, name: str) -> bool:
        """Cancel a queued or running job by name; False if there is no such job."""
        if self.worker.cancel(name):
            log.info("cancel requested for %s (processing)", name)
            return True
        manifest = self.spool.find(name)
        if manifest is None or manifest.state != JobState.queued:
            log.info("cancel for %s: no such queued or processing job", name)
            return False
        self.worker.fail(
            manifest, Reason.cancelled, "cancelled while queued", state=JobState.cancelled
        )
        return True

    def _refresh_pause(self) -> None:
        paused = is_paused(self.layout)
        if paused != self.board.paused:
            self.board.paused = paused
            log.info("service %s", "paused" if paused else "resumed")
            self.board.publish()
            self.worker.wake.set()

    # --- start-up ---

    def recover(self) -> None:
        """Finish or requeue what the last run left in processing/ and pending/."""
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
        self.spool.load()
        self.board.load_finished()
        for manifest in self.spool.processing():
            if manifest.state in FINAL_STATES:
                log.info("finishing %s, interrupted while it ended", manifest.name)
                self.worker.finish(manifest)
                continue
            died = manifest.attempts
            note = f"attempt {died}: the service stopped during this job"
            if died >= self.config.max_attempts:
                self.worker.fail(
                    manifest,
                    Reason.crashed,
                    f"the service died during this job {died} time(s)",
                    "The input may crash the editor; check the service log around "
                    f"{manifest.started_at}, then `hotfolder retry {manifest.name}`.",
                )
                continue
            again = manifest.model_copy(
                update={"attempts": died + 1, "errors": [*manifest.errors, note]}
            )
            self.spool.update(again)
            self.spool.requeue(again)
            log.warning("%s goes back to the head of the queue (%s)", again.name, note)
        for manifest in self.spool.queued():
            self.board.queued(manifest)
        self.board.paused = is_paused(self.layout)
        self.board.publish()

    # --- running ---

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("signal %d: finishing the job in flight, then stopping", signum)
            self.worker.stop()
        else:
            log.info("signal %d again: the job in flight goes back to the queue", signum)
            self.worker.stop(abort=True)
        self._wake.set()

    def run(self, once: bool = False) -> int:
        self.layout.create()
        with root_lock(self.layout):
            previous = {
                sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
            }
            try:
                self.recover()
                self.board.notes["editor"] = "loading model"
                self.board.publish()
                self.editor.load()
                self.board.notes.pop("editor", None)
                self.board.publish()
                if once:
                    self._drain()
                else:
                    self._serve()
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                if self.watcher is not None:
                    self.watcher.stop()
                self.board.publish()
        return 0

    def _drain(self) -> None:
        """Burst mode: handle what is in inbox/ now, work the queue empty, return."""
        while not self.worker.stopping.is_set():
            self.intake.tick()
            self._refresh_pause()
            worked = self.worker.run_one()
            if worked:
                continue
            idle = not self.intake.busy()
            if idle and (not self.spool.queued() or not self.worker.ready()):
                break
            self._wake.wait(timeout=0.1)

    def _serve(self) -> None:
        self.watcher = Watcher(
            self.layout.inbox,
            self.config.observer,
            self._note,
            self.config.poll_interval_seconds,
        )
        self.observer_kind = self.watcher.kind
        self.watcher.start()
        self.worker.start()
        next_beat = 0.0
        while self.worker.alive():
            if not self.worker.stopping.is_set():
                self.intake.tick()
                self._refresh_pause()
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + HEARTBEAT_SECONDS
                self.board.sweep()
                self.board.publish()
                if not self.worker.stopping.is_set():
                    self.watcher.check()
            tracked = len(self.intake.tracker)
            if tracked:
                interval = 0.1 if tracked < 1000 else 1.0
            else:
                interval = self.config.poll_interval_seconds
            self._wake.wait(timeout=interval)
            self._wake.clear()
            # Events come in bursts; a short floor keeps a flood from re-scanning per event.
            time.sleep(0.05)
        self.worker.join()
        log.info("stopped")

    def _note(self, path: str) -> None:
        self.intake.note(Path(path))
        self._wake.set()
