"""Whether some process still has a file open for writing, so that it is not settled yet.

A copier that sets the file's final size first (Windows Explorer over SMB) and then stalls
leaves a file whose size and mtime stand still while it is half written (issue 14). Two
witnesses, both best effort:

- The native (inotify) observer: a file written to (IN_MODIFY) and not closed after writing
  (IN_CLOSE_WRITE) is still being written. This sees every writer on this machine, smbd and
  FTP servers included, whoever they run as. Events can be lost (overflow), so this only
  delays: past `writer_wait_seconds` unchanged, a file is taken anyway.
- /proc/PID/fd: a local process holding the file open with O_WRONLY or O_RDWR. Only processes
  this service may inspect (its own user's; smbd usually runs as root, so not smbd). Scanned
  only when a file is about to settle, at most once per `PROC_SCAN_SECONDS`.

Neither sees a writer on another machine of a network share; there only the format's own
end (hotfolder/endings.py) guards.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

log = logging.getLogger(__name__)

# How stale the /proc scan may be: it is shared by every file that settles meanwhile.
PROC_SCAN_SECONDS: Final = 0.25
# Beyond this many files written and not closed, the oldest reports are dropped (lost events).
MAX_OPEN_WRITES: Final = 10_000
_ACCESS_MODE: Final = 0o3  # O_ACCMODE: 0 read only, 1 write only, 2 read and write

FileKey = tuple[int, int]  # (st_dev, st_ino)


def open_for_writing(inbox: Path, proc: Path = Path("/proc")) -> dict[FileKey, str]:
    """The files under `inbox` that local processes we may inspect hold open for writing,
    each with who holds it ("pid 123 (cp)")."""
    prefix = os.path.realpath(inbox).rstrip("/") + "/"
    found: dict[FileKey, str] = {}
    try:
        pids = [entry for entry in os.listdir(proc) if entry.isdigit()]
    except OSError:
        return found
    for pid in pids:
        fd_dir = proc / pid / "fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or another user's
        for fd in fds:
            try:
                if not os.readlink(fd_dir / fd).startswith(prefix):
                    continue
                if not _writable(proc / pid / "fdinfo" / fd):
                    continue
                info = os.stat(fd_dir / fd)
            except OSError:
                continue  # closed meanwhile
            found[(info.st_dev, info.st_ino)] = f"pid {pid} ({_command(proc / pid)})"
    return found


def _writable(fdinfo: Path) -> bool:
    for line in fdinfo.read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8) & _ACCESS_MODE != 0
    return False


def _command(process: Path) -> str:
    try:
        return (process / "comm").read_text().strip()
    except OSError:
        return "?"


class Writers:
    """Who still writes a file; `holding` says so until the file stood still `wait_seconds`."""

    def __init__(
        self,
        inbox: Path,
        wait_seconds: float,
        *,
        scan: Callable[[Path], dict[FileKey, str]] = open_for_writing,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inbox = inbox
        self.wait_seconds = wait_seconds
        self._scan = scan
        self._clock = clock
        self._lock = threading.Lock()
        self._written: dict[str, None] = {}  # paths written and not closed yet, oldest first
        self._scanned: tuple[float, dict[FileKey, str]] | None = None
        self._warned: set[str] = set()

    # --- the native observer's thread ---

    def event(self, kind: str, path: str) -> None:
        """A native observer's event on `path`: modified, closed (after writing), deleted or
        moved away. (A file moved into inbox/ arrives whole, by a rename.)"""
        with self._lock:
            if kind == "modified":
                self._written.pop(path, None)
                self._written[path] = None
                if len(self._written) > MAX_OPEN_WRITES:
                    del self._written[next(iter(self._written))]
            elif kind in ("closed", "deleted", "moved"):
                self._written.pop(path, None)
                self._scanned = None  # a writer let go: look again

    # --- the intake's thread ---

    def holding(self, path: Path, info: os.stat_result, unchanged_seconds: float) -> str | None:
        """Who still has this settled-looking file open for writing, or None when nobody does
        (or it stood still for `wait_seconds` whoever holds it)."""
        writer = self._writer(path, info)
        if writer is None:
            self._warned.discard(os.fspath(path))
            return None
        if unchanged_seconds < self.wait_seconds:
            return writer
        if os.fspath(path) not in self._warned:
            self._warned.add(os.fspath(path))
            log.warning(
                "%s is still open for writing (%s) but has not changed for %.0f s "
                "(writer_wait_seconds); taking it",
                path,
                writer,
                unchanged_seconds,
            )
        return None

    def forget(self, path: Path) -> None:
        self._warned.discard(os.fspath(path))

    def _writer(self, path: Path, info: os.stat_result) -> str | None:
        with self._lock:
            if os.fspath(path) in self._written:
                return "written and not closed yet, as inotify saw it"
            scanned = self._scanned
        now = self._clock()
        if scanned is None or abs(now - scanned[0]) >= PROC_SCAN_SECONDS:
            scanned = (now, self._scan(self.inbox))
            with self._lock:
                self._scanned = scanned
        return scanned[1].get((info.st_dev, info.st_ino))
