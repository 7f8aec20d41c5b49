"""When a file counts: size and mtime unchanged for `settle_seconds` (pure; time is passed in)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

# Who still holds a file open for writing, given for how long it has not changed; None: nobody.
Holder = Callable[[float], object]


def _nobody(_unchanged_seconds: float) -> None:
    return None


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # when the settle clock started: a change (or first seen), or a writer let go
    changed: float  # when size or mtime last changed (or first seen)
    looked: float  # when it was last looked at
    free: bool = False  # no writer held it when it settled


class StabilityTracker:
    """Tracks files until their size and mtime stop changing.

    A copy over SMB grows the file and bumps its mtime as it goes; only a file
    that looked the same for `settle_seconds` is handed on. Old or future mtimes
    do not matter: only change is measured, on the service's own clock. A file that
    some process still holds open for writing (`held`, asked once as it is about to
    settle) starts its settle clock again, so it settles `settle_seconds` after the
    writer lets go (issue 14: a copier that preallocates, then stalls).
    """

    def __init__(self, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self._seen: dict[Path, _Seen] = {}

    def observe(
        self, path: Path, size: int, mtime_ns: int, now: float, held: Holder = _nobody
    ) -> bool:
        """Record what the file looks like now; return whether it has settled."""
        seen = self._seen.get(path)
        if seen is None or seen.size != size or seen.mtime_ns != mtime_ns:
            seen = self._seen[path] = _Seen(size, mtime_ns, now, now, now)
        seen.looked = now
        if now - seen.since < self.settle_seconds:
            return False
        if not seen.free:
            if held(now - seen.changed) is not None:
                seen.since = now
                return False
            seen.free = True
        return True

    def mtime_ns(self, path: Path) -> int | None:
        """The mtime a tracked file had at its last look (None: not tracked)."""
        seen = self._seen.get(path)
        return None if seen is None else seen.mtime_ns

    def restart(self, now: float, paths: Iterable[Path] | None = None) -> None:
        """Every file's settle clock (or these `paths`') starts again now: inbox/ (or their
        folder) could not be read, so no station could write there either, and the time it
        was away counts towards no wait (a lone image waits its full `sidecar_wait_seconds`
        once it is back)."""
        for path in self._seen if paths is None else paths:
            seen = self._seen.get(path)
            if seen is not None:
                seen.since = max(seen.since, now)

    def last_look(self, path: Path, now: float, within: float) -> int | None:
        """The mtime (ns) a settled file had at its last look, if that look is less than
        `within` seconds old; None where it must be looked at (a file still settling is
        looked at on every tick: its settle clock starts again the moment a change is seen).
        """
        seen = self._seen.get(path)
        if seen is None or not seen.free or now - seen.looked >= within:
            return None
        return seen.mtime_ns

    def settled_at(self, path: Path) -> float | None:
        """The moment the file settled (or will settle, if it keeps still)."""
        seen = self._seen.get(path)
        return None if seen is None else seen.since + self.settle_seconds

    def next_settle(self, now: float) -> float | None:
        """When the next file that is still settling will have settled, if none changes."""
        upcoming = [seen.since + self.settle_seconds for seen in self._seen.values()]
        future = [moment for moment in upcoming if moment > now]
        return min(future, default=None)

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)

    def __contains__(self, path: object) -> bool:
        return path in self._seen

    def tracked(self) -> list[Path]:
        return list(self._seen)

    def __len__(self) -> int:
        return len(self._seen)
