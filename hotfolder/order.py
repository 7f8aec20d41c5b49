"""The order queued jobs start in: `dispatch: fifo` or `fair` (SPEC: "Per-station limits and
fair turns"). The spool (claims), the board (positions and waits) and `hotfolder status`
all take their order from here, so what a station reads is what the dispatcher does.

A job's sort key (head, priority, seq) is fixed at admission. `fifo` sorts by it. `fair`
lets stations take turns: a **station** is a top-level folder of inbox/ (drops directly in
inbox/ are one station of their own). Jobs put back at the head (after a crash or a second
signal) still go first; then the queue runs in rounds, each station giving its next job
(its own jobs first in, first out, `priority: high` first). Within a round, high-priority
jobs go first, then stations in turn: the one served longest ago (or never) first. That
memory of turns is what makes it round-robin: without it, the station with the oldest
job would win every turn. It lives in memory; a restart starts the turns afresh.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Iterable
from typing import Literal, TypeVar

Mode = Literal["fifo", "fair"]
Key = tuple[int, int, int]  # (0 if head else 1, 0 if high else 1, seq)
T = TypeVar("T")


def station_of(name: str) -> str:
    """`station-3/IMG_1` -> `station-3`; a job dropped directly in inbox/ -> `` (one station)."""
    top, slash, _rest = name.partition("/")
    return top if slash else ""


class QueueOrder:
    """The order in force, and which station was served when (thread-safe)."""

    def __init__(self, mode: Mode = "fifo") -> None:
        self.mode: Mode = mode
        self._served: dict[str, int] = {}
        self._turns = itertools.count(1)
        self._lock = threading.Lock()

    def copy(self) -> QueueOrder:
        """The same order with its own record of turns (to play the queue out ahead)."""
        other = QueueOrder(self.mode)
        with self._lock:
            other._served = dict(self._served)
        other._turns = itertools.count(max(other._served.values(), default=0) + 1)
        return other

    def served(self, name: str) -> None:
        """A job of this name was just taken by a worker: its station goes to the back."""
        if self.mode == "fair":
            with self._lock:
                self._served[station_of(name)] = next(self._turns)

    def arrange(
        self, items: Iterable[T], key: Callable[[T], Key], name: Callable[[T], str]
    ) -> list[T]:
        """Every queued item, in the order they will start."""
        if self.mode == "fifo":
            return sorted(items, key=key)
        heads: list[T] = []
        stations: dict[str, list[T]] = {}
        for item in items:
            if key(item)[0] == 0:
                heads.append(item)
            else:
                stations.setdefault(station_of(name(item)), []).append(item)
        for jobs in stations.values():
            jobs.sort(key=key)
        rank = self._ranks({station: key(jobs[0])[2] for station, jobs in stations.items()})
        ordered = sorted(heads, key=key)
        for round_ in itertools.count():
            turn = [
                (station, jobs[round_]) for station, jobs in stations.items() if round_ < len(jobs)
            ]
            if not turn:
                return ordered
            turn.sort(key=lambda entry: (key(entry[1])[1], rank[entry[0]]))
            ordered += [item for _station, item in turn]
        return ordered  # pragma: no cover - the loop returns

    def upcoming(
        self, items: Iterable[T], key: Callable[[T], Key], name: Callable[[T], str], count: int
    ) -> list[T]:
        """`arrange(...)[:count]` without sorting the whole queue (the decoder's look ahead,
        after every hand-over: with 1,000 queued, a full sort each time held the spool)."""
        if self.mode == "fifo":
            return heapq.nsmallest(count, items, key=key)
        if count == 1:
            first = self.first(items, key, name)
            return [] if first is None else [first]
        return self.arrange(items, key, name)[:count]

    def first(
        self, items: Iterable[T], key: Callable[[T], Key], name: Callable[[T], str]
    ) -> T | None:
        """The item that starts next: `arrange(...)[0]` in one pass (the dispatch decision)."""
        if self.mode == "fifo":
            return min(items, key=key, default=None)
        head: tuple[Key, T] | None = None
        best: dict[str, tuple[Key, T]] = {}  # each station's next job
        for item in items:
            item_key = key(item)
            if item_key[0] == 0:
                if head is None or item_key < head[0]:
                    head = (item_key, item)
                continue
            station = station_of(name(item))
            current = best.get(station)
            if current is None or item_key < current[0]:
                best[station] = (item_key, item)
        if head is not None:
            return head[1]
        if not best:
            return None
        rank = self._ranks({station: entry[0][2] for station, entry in best.items()})
        return min(best.items(), key=lambda entry: (entry[1][0][1], rank[entry[0]]))[1][1]

    def _ranks(self, first_seq: dict[str, int]) -> dict[str, int]:
        """Each station's place in a round: served longest ago (never: 0) first, then oldest job."""
        with self._lock:
            served = dict(self._served)
        turn = sorted(first_seq, key=lambda station: (served.get(station, 0), first_seq[station]))
        return {station: place for place, station in enumerate(turn)}
