"""The service: lock the root, recover what a crash left, then watch, admit and work until told to stop."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from hotfolder import fsops, rejection
from hotfolder.config import Config
from hotfolder.control import ControlDesk
from hotfolder.editors import Editor, make_editor
from hotfolder.errors import ConfigError, Reason, Rejected, ServiceLocked
from hotfolder.history import History
from hotfolder.intake import Intake, kind_of, split_name
from hotfolder.layout import Layout, new_job_id
from hotfolder.notify import Notifier
from hotfolder.sidecar import read_layer, resolve
from hotfolder.spool import FINAL_STATES, JobState, Manifest, Spool
from hotfolder.status import HEARTBEAT_SECONDS, Board, iso, read_status
from hotfolder.watch import Watcher, choose_observer, filesystem_type, is_network_fs
from hotfolder.worker import Worker

log = logging.getLogger(__name__)

# How long past its limit an edit that reports no progress may run before the service gives up.
HUNG_GRACE_SECONDS = 5.0
# Exit status after giving up on a hung editor (the process must restart to get the GPU back).
EXIT_HUNG = 3
# Temporary files whose writer is gone are removed at start-up; any older than this too.
STALE_TEMP_SECONDS = 3600.0


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


def is_paused(layout: Layout) -> bool:
    return layout.pause_flag.exists()


class Service:
    def __init__(self, config: Config, editor: Editor | None = None) -> None:
        self.config = config
        self.layout = Layout(config.root_path)
        self.editor = editor if editor is not None else make_editor(config)
        self.observer_kind = choose_observer(config.observer, self.layout.inbox)
        self.spool = Spool(self.layout)
        fsops.ensure_dir(self.layout.private)
        self.history = History(
            self.layout.private / "history.db",
            network=is_network_fs(filesystem_type(self.layout.root)),
        )
        self.board = Board(
            self.layout, config, observer=lambda: self.observer_kind, history=self.history
        )
        self.notifier = Notifier()
        self.worker = Worker(
            self.layout,
            config,
            self.spool,
            self.board,
            self.editor,
            paused=lambda: self.board.paused,
            notifier=self.notifier,
        )
        self.intake = Intake(
            self.layout,
            config,
            self.spool,
            self.board,
            on_admit=self.worker.wake.set,
            on_cancel=self.cancel,
            hold=lambda: self.board.notes.get("disk"),
        )
        self.controls = ControlDesk(self.layout, {"cancel": self.cancel, "retry": self.retry})
        self.watcher: Watcher | None = None
        self._signals = 0
        self._next_replay = 0.0
        self._wake = threading.Event()

    # --- controls ---

    def cancel(self, name: str) -> tuple[bool, str]:
        """Cancel a queued or running job by name; say so and change nothing if there is none."""
        name = name.strip("/")
        with self.spool.lock:
            if self.worker.cancel(name):
                return True, f"{name} is being cancelled (it stops at its next step)"
            manifest = self.spool.find(name)
            if manifest is None or manifest.state != JobState.queued:
                return False, f"no queued or processing job named {name}; nothing changed"
            self.worker.fail(
                manifest, Reason.cancelled, "cancelled while queued", state=JobState.cancelled
            )
        self.board.publish()
        return True, f"{name} cancelled; its files are in failed/"

    def retry(self, name: str) -> tuple[bool, str]:
        """Put a failed or cancelled job back into the queue, keeping its attempts and errors."""
        name = name.strip("/")
        with self.spool.lock:
            if self.spool.find(name) is not None:
                return False, f"{name} is already queued or processing"
            base = name.rpartition("/")[2]
            folder = (self.layout.failed / name).parent
            found = []
            if folder.is_dir():
                found = [p for p in folder.iterdir() if split_name(p.name)[0] == base]
            image_files = [p for p in found if kind_of(p.name) == "image"]
            side_files = [p for p in found if kind_of(p.name) == "sidecar"]
            if len(image_files) != 1 or len(side_files) > 1:
                what = "no image" if not image_files else "more than one image or sidecar"
                return False, f"failed/ holds {what} for {name}; nothing to retry"
            if self.spool.pending_count() >= self.config.max_pending:
                return False, f"the queue is full ({self.config.max_pending}); retry {name} later"
            image, side = image_files[0], side_files[0] if side_files else None
            previous = read_status(self.layout.status_path(name))
            layers = self.intake._layers((self.layout.inbox / name).parent / image.name)
            try:
                if isinstance(layers, Rejected):
                    raise layers
                if side is not None:
                    limit = self.config.limits.max_sidecar_bytes
                    layers = [
                        *layers,
                        (self.layout.relative(side), read_layer(side, max_bytes=limit)),
                    ]
                spec = resolve(layers, config=self.config)
            except Rejected as e:
                return (
                    False,
                    f"{name} cannot be retried: {e.message} (fix it in failed/, then retry)",
                )
            errors = list(previous.errors) if previous else []
            if previous is not None and previous.error_code:
                errors.append(
                    f"attempt {previous.attempts}: {previous.error_code}: {previous.error}"
                )
            seed = spec.seed
            if seed is None:
                known = previous.result_seed if previous is not None else None
                seed = known if known is not None else secrets.randbits(32)
            now = time.time()
            manifest = Manifest(
                job_id=previous.job_id if previous else new_job_id(now),
                name=name,
                seq=self.spool.next_seq(),
                priority=spec.priority,
                created_at=(previous.created_at if previous else None) or iso(now) or "",
                source=(previous.source if previous else None) or self.layout.relative(image),
                image=image.name,
                sidecar=side.name if side else None,
                inbox_image=self.layout.relative(image),
                inbox_sidecar=self.layout.relative(side) if side else None,
                spec=spec.model_dump(mode="json"),
                seed=seed,
                attempts=(previous.attempts if previous else 0) + 1,
                errors=errors,
            )
            self.spool.admit(manifest)
            fsops.remove(self.layout.reason_path(name))
            fsops.prune_empty_dirs(folder, self.layout.failed)
            self.board.queued(manifest)
        self.board.publish()
        self.worker.wake.set()
        return True, f"{name} is back in the queue (attempt {manifest.attempts})"

    def _low_disk(self) -> str | None:
        """Why admission must wait for disk space, or None."""
        floor = self.config.min_free_bytes
        note = None
        for folder in (self.layout.root, self.layout.outbox):
            try:
                info = os.statvfs(folder)
            except OSError:
                continue
            free = info.f_bavail * info.f_frsize
            if free < floor:
                note = (
                    f"only {free // 1_000_000} MB free under {folder.name or folder}/, below "
                    f"min_free_bytes ({floor // 1_000_000} MB): not admitting new jobs"
                )
                break
        if note != self.board.notes.get("disk"):
            if note is None:
                self.board.notes.pop("disk", None)
                log.info("disk space is back; admitting again")
            else:
                self.board.notes["disk"] = note
                log.warning("%s", note)
            self.board.accepting = note is None
            self.board.publish()
        return note

    def _watchdog(self) -> None:
        """An editor stuck without reporting progress past its time limit cannot be stopped
        from inside; fail its job as `timeout` and exit so the supervisor restarts us."""
        deadline = self.worker.current_deadline
        manifest = self.worker.current
        if deadline is None or manifest is None:
            return
        if time.monotonic() < deadline + HUNG_GRACE_SECONDS:
            return
        log.error(
            "%s: the editor is stuck past the job's time limit; failing it and exiting "
            "so the supervisor restarts the service",
            manifest.name,
        )
        try:
            self.worker.fail(
                manifest,
                Reason.timeout,
                "the edit hung past its time limit",
                "The service restarted itself to recover; raise the preset's "
                "job_timeout_seconds if such jobs are expected to take this long.",
            )
            self.board.publish()
        finally:
            logging.shutdown()
            os._exit(EXIT_HUNG)

    def _housekeeping(self) -> None:
        """Every tick: the hung-editor watchdog, disk space, controls, replays, pause."""
        self._watchdog()
        self._low_disk()
        now = time.monotonic()
        if now >= self._next_replay:
            # Rejections cut short by a refusing disk are finished once it takes files again.
            self._next_replay = now + HEARTBEAT_SECONDS
            try:
                rejection.replay(self.layout, self.board)
            except OSError as e:
                log.warning("cannot finish an interrupted rejection yet: %s", e)
        self.controls.poll()
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
        replayed = rejection.replay(self.layout, self.board)
        if replayed:
            log.info("finished %d rejection(s) a crash had interrupted", replayed)
        for manifest in self.spool.unfinished():
            log.info("finishing %s, interrupted while it ended", manifest.name)
            try:
                self.worker.finish(manifest)
            except OSError as e:
                log.error("cannot finish %s yet (%s); the worker tries again", manifest.name, e)
        for manifest in self.spool.processing():
            if manifest.state in FINAL_STATES:
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

    def _check_one_filesystem(self) -> None:
        """Moves between the queue's folders are renames, which only work on one filesystem."""
        folders = (
            self.layout.inbox,
            self.layout.pending,
            self.layout.processing,
            self.layout.archive,
            self.layout.failed,
        )
        devices = {folder: os.stat(folder).st_dev for folder in folders}
        if len(set(devices.values())) > 1:
            first = devices[self.layout.inbox]
            apart = ", ".join(f"{f.name}/" for f, dev in devices.items() if dev != first)
            raise ConfigError(
                f"{apart} is on another filesystem than inbox/; moves between them must be "
                f"renames, so keep inbox/ pending/ processing/ archive/ failed/ on one "
                f"filesystem under {self.layout.root}"
            )

    def run(self, once: bool = False) -> int:
        self.layout.create()
        self._check_one_filesystem()
        with root_lock(self.layout):
            previous = {
                sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
            }
            self.notifier.start()
            try:
                self.recover()
                self._load_editor()
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
                self.history.close()
                self.notifier.stop()
        return 0

    def _load_editor(self) -> None:
        """Load the model (minutes for the real one) while queue.json keeps its heartbeat."""
        self.board.notes["editor"] = "loading model"
        self.board.publish()
        failure: list[BaseException] = []

        def load() -> None:
            try:
                self.editor.load()
                prepare = getattr(self.editor, "prepare", None)
                if prepare is not None:
                    # Fetch the default preset's LoRA now: a missing one stops start-up, not a job.
                    prepare(self.config.preset(None))
            except BaseException as e:
                failure.append(e)

        loader = threading.Thread(target=load, name="hotfolder-load")
        loader.start()
        while loader.is_alive():
            loader.join(HEARTBEAT_SECONDS)
            self.board.publish()
        if failure:
            raise failure[0]
        self.board.notes.pop("editor", None)

    def _drain(self) -> None:
        """Burst mode: handle what is in inbox/ now, work the queue empty, return."""
        while not self.worker.stopping.is_set():
            self.intake.tick()
            self._housekeeping()
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
                self._housekeeping()
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + HEARTBEAT_SECONDS
                self.board.sweep()
                self.board.publish()
                if not self.worker.stopping.is_set():
                    self.watcher.check()
            tracked = len(self.intake.tracker)
            if self.intake.behind:
                interval = 0.0  # the tick ran out of time with work left: go on at once
            elif tracked:
                interval = 0.1 if tracked < 1000 else 1.0
                if tracked < 1000:
                    # Wake the moment the next file settles: pickup latency is settle_seconds
                    # plus a few milliseconds, not plus a polling period.
                    due = self.intake.seconds_to_next_settle()
                    if due is not None:
                        interval = min(interval, due + 0.002)
            else:
                interval = self.config.poll_interval_seconds
            # Whatever poll_interval_seconds says, wake for the next heartbeat and rescan.
            interval = min(
                interval, max(0.0, next_beat - time.monotonic()), self.intake.seconds_to_rescan()
            )
            if self._wake.wait(timeout=interval):
                # Events come in bursts; a short pause lets a copy's events arrive together.
                time.sleep(0.01)
            self._wake.clear()
        self.worker.join()
        log.info("stopped")

    def _note(self, path: str) -> None:
        self.intake.note(Path(path))
        self._wake.set()
