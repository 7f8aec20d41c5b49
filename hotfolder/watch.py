"""Watching inbox/: a watchdog observer that only records paths, supervised and restartable.

inotify sees nothing that another machine writes to a CIFS/NFS mount, so on
network and FUSE filesystems `observer: auto` polls instead. watchdog's threads
can die silently (watchdog issues #409, #668, #1065), so `check()` restarts a
dead one; the intake's periodic rescan covers whatever was missed meanwhile.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

MOUNTINFO = Path("/proc/self/mountinfo")

# Filesystems where another machine's writes raise no inotify event.
NETWORK_FS_TYPES = frozenset(
    {
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "nfs",
        "nfs4",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "ncpfs",
        "virtiofs",
        "davfs",
        "sshfs",
        "vboxsf",
        "vmhgfs",
        "prl_fs",
    }
)


def _unescape_mount(field: str) -> str:
    # The kernel writes space, tab, newline and backslash in mount points as \ooo (octal);
    # one pass, so that an escaped backslash followed by digits stays what it was.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: Path, mountinfo: Path = MOUNTINFO) -> str | None:
    """The filesystem type of the mount holding `path` (the deepest, last mounted), or None."""
    try:
        text = mountinfo.read_text()
    except OSError:
        return None
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        if len(fields) < 5:
            continue
        mount_point = _unescape_mount(fields[4])
        fstype = right.split()[0] if right.split() else ""
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), fstype)
    return best[1] if best else None


def is_network_fs(fstype: str | None) -> bool:
    if fstype is None:
        return False
    return fstype in NETWORK_FS_TYPES or fstype.startswith("fuse")


def choose_observer(mode: str, inbox: Path, mountinfo: Path = MOUNTINFO) -> str:
    """`native` or `polling`, as `observer: auto|native|polling` and the filesystem say."""
    if mode != "auto":
        return mode
    return "polling" if is_network_fs(filesystem_type(inbox, mountinfo)) else "native"


def _no_move_pairing_delay() -> None:
    """watchdog holds every inotify event for 0.5 s after a file is moved out of a watched
    folder, to pair the move with its arrival. The service moves each admitted file out of
    inbox/, so that delay landed on the next drop's pickup (benchmarks/README.md). The
    recorder only needs paths, never paired moves, so the delay goes."""
    try:
        from watchdog.observers.inotify_move_event_grouper import InotifyMoveEventGrouper
    except ImportError:  # not Linux, or a watchdog without the grouper
        return
    InotifyMoveEventGrouper.delay = 0.0


# What a native observer says about writers (hotfolder/writers.py): a file written, then
# closed after writing (inotify's IN_CLOSE_WRITE), or gone. A polling observer says "modified"
# too but never "closed", so only a native observer's events are passed on.
WRITER_EVENTS = frozenset({"modified", "closed", "deleted", "moved"})


# The events the recorder takes (`schedule(event_filter=...)`; a native observer asks the
# kernel for these only). Not opened or closed unwritten: every read of a file in inbox/
# (intake reads each drop) cost the observer's threads two events, thrown away. Not a
# folder's own "modified" either: each entry it gains or loses has its own event, and
# noting the folder made intake list it again every tick (all of inbox/ with every
# admission out of it: 2,000 entries per tick in a burst). A folder that appears (created,
# moved in) is still noted, and its files looked at (issue 14).
EVENTS: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileMovedEvent,
    DirMovedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileModifiedEvent,
    FileClosedEvent,
]


class _Recorder(FileSystemEventHandler):
    """Thin on purpose: remember which paths changed; intake decides the rest."""

    def __init__(
        self, note: Callable[[str], None], written: Callable[[str, str], None] | None
    ) -> None:
        self._note = note
        self._written = written

    def on_any_event(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        if self._written is not None and kind in WRITER_EVENTS and not event.is_directory:
            self._written(kind, os.fsdecode(event.src_path))
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path:
                self._note(os.fsdecode(path))


class Watcher:
    def __init__(
        self,
        inbox: Path,
        mode: str,
        note: Callable[[str], None],
        poll_interval_seconds: float = 1.0,
        written: Callable[[str, str], None] | None = None,
    ) -> None:
        self.inbox = inbox
        self.mode = mode
        self.kind = choose_observer(mode, inbox)
        self._note = note
        self._written = written  # (event type, path) for writers.Writers.event, native only
        self._poll_interval = poll_interval_seconds
        self._observer: BaseObserver | None = None
        self.restarts = 0

    def _make(self) -> BaseObserver:
        if self.kind == "polling":
            return PollingObserver(timeout=self._poll_interval)
        _no_move_pairing_delay()
        return Observer()

    def start(self) -> None:
        observer = self._make()
        written = self._written if self.kind == "native" else None
        observer.schedule(
            _Recorder(self._note, written), str(self.inbox), recursive=True, event_filter=EVENTS
        )
        observer.daemon = True
        observer.start()
        self._observer = observer
        log.info("watching %s with the %s observer", self.inbox, self.kind)

    @property
    def observer(self) -> BaseObserver | None:
        """The running observer thread (for tests and diagnostics)."""
        return self._observer

    def alive(self) -> bool:
        observer = self._observer
        if observer is None or not observer.is_alive():
            return False
        return all(emitter.is_alive() for emitter in observer.emitters)

    def check(self) -> bool:
        """Restart the observer if its thread died; return True if it was restarted."""
        if self.alive():
            return False
        if not self.inbox.is_dir():
            return False  # the share is away; intake says so, try again later
        self.stop()
        try:
            self.start()
        except OSError as e:
            log.warning("could not restart the %s observer: %s", self.kind, e)
            return False
        self.restarts += 1
        log.warning(
            "the %s observer had stopped; restarted it (restart %d)", self.kind, self.restarts
        )
        return True

    def stop(self) -> None:
        observer, self._observer = self._observer, None
        if observer is None:
            return
        try:
            observer.stop()
            observer.join(timeout=5)
        except (RuntimeError, OSError):
            pass
