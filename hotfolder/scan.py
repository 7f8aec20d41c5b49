"""Finding drops under inbox/: a walk that skips junk, and what can never be a drop."""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

from hotfolder.errors import Reason
from hotfolder.layout import IMAGE_SUFFIXES, RAW_SUFFIXES
from hotfolder.names import fold, is_ignored, is_ignored_dir, kind_of, split_name
from hotfolder.pairing import Refusal
from hotfolder.settle import StabilityTracker

log = logging.getLogger(__name__)

# What an unsupported file's reason offers instead: "jpg jpeg ... avif, camera RAW (dng ...)".
_IMAGE_TYPES = "{}, camera RAW ({})".format(
    " ".join(suffix[1:] for suffix in IMAGE_SUFFIXES if suffix not in RAW_SUFFIXES),
    " ".join(suffix[1:] for suffix in RAW_SUFFIXES),
)


# A settled file nothing was noted for is looked at again (lstat) at least this often.
LOOK_AGAIN_SECONDS: Final = 1.0

# A settled file not looked at this tick: (path, mtime_ns) as its last look left it.
Quiet = tuple[Path, int]


class Sightings:
    """Which paths the next tick of the intake looks at: what the watcher noted (from any
    thread), and all of inbox/ when the periodic rescan is due, which catches whatever
    events were lost; and whether inbox/ can be read at all."""

    def __init__(
        self,
        inbox: Path,
        rescan_interval_seconds: float,
        say: Callable[[str | None], object] = lambda problem: None,
    ) -> None:
        self.inbox = inbox
        self.rescan_interval_seconds = rescan_interval_seconds
        self.say = say  # why intake is paused (queue.json's notes), or None once it is not
        self.unreachable: str | None = None
        self.back = False  # reachable again, and not told yet (`came_back`)
        self._noted: set[Path] = set()
        self._lock = threading.Lock()
        self._next_rescan = 0.0

    def note(self, path: Path) -> None:
        with self._lock:
            self._noted.add(path)

    def seconds_to_rescan(self, now: float) -> float:
        return max(0.0, self._next_rescan - now)

    def take(self, now: float, tracker: StabilityTracker) -> tuple[set[Path], list[Quiet]]:
        """The paths to look at: what was noted, all of inbox/ if a rescan is due, and every
        tracked file still settling; and the settled files nothing was noted for, looked at
        less than LOOK_AGAIN_SECONDS ago (`Quiet`), as their last look left them: a drop
        held for room is not looked at on every tick (the intake looks again before it
        decides one)."""
        with self._lock:
            paths, self._noted = self._noted, set()
        if now >= self._next_rescan:
            paths.update(walk(self.inbox))
            self._next_rescan = now + self.rescan_interval_seconds
        quiet: list[Quiet] = []
        for path in tracker.tracked():
            if path in paths:
                continue
            mtime_ns = tracker.last_look(path, now, LOOK_AGAIN_SECONDS)
            if mtime_ns is None:
                paths.add(path)
            else:
                quiet.append((path, mtime_ns))
        return paths, quiet

    def reachable(self) -> bool:
        """Whether inbox/ can be read now; says so when that changes, and rescans once back."""
        try:
            os.stat(self.inbox)
            if not os.access(self.inbox, os.R_OK | os.X_OK):
                raise PermissionError(f"cannot read {self.inbox}")
        except OSError as e:
            # A share that drops is not "every file deleted": keep what we know, pause, retry.
            if self.unreachable is None:
                log.warning("inbox/ is unreachable (%s); intake paused until it is back", e)
            self.unreachable = f"inbox/ is unreachable: {e}"
            self.say(self.unreachable)
            return False
        if self.unreachable is not None:
            log.info("inbox/ is reachable again; intake resumed, rescanning")
            self.unreachable = None
            self.say(None)
            self._next_rescan = 0.0
            self.back = True
        return True

    def came_back(self) -> bool:
        """Whether inbox/ is reachable again since the last time this was asked."""
        back, self.back = self.back, False
        return back


def walk(top: Path) -> Iterator[Path]:
    """Every file under `top` that is not junk.

    Junk folders (`@eaDir`, dotfolders, …) are not entered; every other folder is, whatever
    its name (`Holiday.JPG/` is a folder of drops like any other). A folder that cannot be
    listed is logged and skipped; the next rescan tries again.
    """
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if not is_ignored_dir(entry.name):
                            stack.append(Path(entry.path))
                    elif not is_ignored(entry.name):
                        yield Path(entry.path)
        except OSError as e:
            log.warning("cannot list %s: %s", folder, e)


def same_stem(folder: Path, stem: str, kinds: tuple[str, ...]) -> list[Path]:
    """The files of `folder` of these `kinds` whose stem folds to `stem` (one drop's, as
    intake groups them), by name; none if the folder cannot be listed."""
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    return sorted(
        folder / entry
        for entry in entries
        if kind_of(entry) in kinds and fold(split_name(entry)[0]) == stem
    )


def not_a_plain_file(path: Path, info: os.stat_result) -> Refusal | None:
    """Why a file that is not a folder can never be a drop, or None if it may be one.

    Links, FIFOs, sockets and files with other hard links are never followed or opened:
    what the service would read or move is not what the person dropped.
    """
    if not stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a plain file"
        return _unsupported(path, f"{path.name} is {what}; drop the file itself")
    if info.st_nlink > 1:
        return _unsupported(
            path,
            f"{path.name} has {info.st_nlink} hard links; drop a copy of the file, not a link",
        )
    return None


def unknown_type(path: Path) -> Refusal:
    """A file that is neither an image, a sidecar nor a cancel file."""
    ext = split_name(path.name)[1] or "(none)"
    return _unsupported(
        path,
        f"{path.name}: files of type {ext} are not handled here",
        f"Drop images ({_IMAGE_TYPES}) with a NAME.yaml sidecar.",
    )


def _unsupported(path: Path, message: str, details: str = "") -> Refusal:
    return Refusal((path,), Reason.unsupported_type, message, details)
