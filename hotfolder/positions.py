"""Where queued jobs, and drops held in inbox/ for room, stand in the queue: `position` (1:
next to start) and `estimated_wait_seconds`, in the order in force (SPEC: "Per-station
limits and fair turns"; "Waiting, overflow and retries": a held drop's position counts
every job ahead of it).

For held drops the queue is played out in the order in force: each start makes room, and
they join in drop order as they fit (as intake admits them), `priority: high` then ahead of
`normal` and, under `fair`, each in its station's turn; so a held drop counts the jobs that
start while older held drops wait for room.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hotfolder.config import Config
from hotfolder.jobstatus import JobStatus, parse_iso
from hotfolder.order import QueueOrder, station_of
from hotfolder.pairing import Ready

if TYPE_CHECKING:
    from hotfolder.written import Written

# Held drops take sequence numbers past any a queued job has, in drop order.
HELD_SEQ = 1 << 62
# (when it was first held, the image's mtime in ns, its path under inbox/): held drops come
# in the order they were held, those held in one tick in the order of their images' mtime.
DropOrder = tuple[float, int, str]


@dataclass(frozen=True)
class Hold:
    """What the board needs to place a held drop in the queue it will join."""

    order: DropOrder
    high: bool  # priority: high
    preset: str

    @classmethod
    def of(cls, item: Ready, relative: str, since: float) -> Hold:
        """A ready pair whose image is at `relative` (to inbox/), held since `since`."""
        order = (since, item.mtime_ns, relative)
        return cls(order, item.spec.priority == "high", item.spec.preset)

    @classmethod
    def shown(cls, status: JobStatus, preset: str) -> Hold:
        """A drop an earlier run showed as held, as far as its status file tells (held since
        it was first seen; its priority is not there): for a command run with no service."""
        relative = (status.source or "").removeprefix("inbox/")
        return cls(
            (parse_iso(status.created_at) or 0.0, 0, relative), False, status.model or preset
        )


class Estimator:
    """Moving average of recent job times per preset, seeded by the preset's nominal time."""

    WINDOW = 10

    def __init__(self, config: Config) -> None:
        self._config = config
        self._times: dict[str, deque[float]] = {}

    def add(self, preset: str, seconds: float) -> None:
        self._times.setdefault(preset, deque(maxlen=self.WINDOW)).append(seconds)

    def seconds(self, preset: str) -> float:
        times = self._times.get(preset)
        if times:
            return sum(times) / len(times)
        known = self._config.presets.get(preset)
        return known.nominal_seconds if known else 60.0


def play_out(
    estimator: Estimator, queued: list[Entry], running: list[Entry], slots: int, now: float
) -> list[int]:
    """Estimated seconds until each queued job starts: its turn on the first free slot."""
    free_at = [max(0.0, estimator.seconds(e.preset) - (now - (e.started or now))) for e in running][
        :slots
    ]
    free_at += [0.0] * (slots - len(free_at))
    heapq.heapify(free_at)
    waits: list[int] = []
    for entry in queued:
        start = heapq.heappop(free_at)
        waits.append(round(start))  # whole seconds (SPEC: "estimated_wait_seconds": 60)
        heapq.heappush(free_at, start + estimator.seconds(entry.preset))
    return waits


class Entry:
    """A queued or processing job as the board shows it."""

    __slots__ = ("key", "preset", "started", "status")

    def __init__(self, key: tuple[int, int, int], status: JobStatus, preset: str) -> None:
        self.key = key
        self.status = status
        self.preset = preset
        self.started: float | None = None  # monotonic, while processing


def placed(
    estimator: Estimator,
    queued: list[Entry],
    running: list[Entry],
    slots: int,
    now: float,
    *,
    only: Collection[str] | None = None,
) -> list[JobStatus]:
    """Each of `queued` (in the order they start) with its position and estimated wait;
    `slots` 0: no job will start (paused, stopping), so no wait is known. `only`: just the
    statuses of these job ids (the others still count for the places and waits)."""
    waits: list[int | None] = [None] * len(queued)
    if slots > 0:
        waits = list(play_out(estimator, queued, running, slots, now))
    return [
        entry.status.model_copy(update={"position": position, "estimated_wait_seconds": wait})
        for position, (entry, wait) in enumerate(zip(queued, waits, strict=True), start=1)
        if only is None or entry.status.job_id in only
    ]


def held_places(
    order: QueueOrder,
    estimator: Estimator,
    queued: list[Entry],
    running: list[Entry],
    held: list[tuple[JobStatus, Hold]],
    *,
    slots: int,
    now: float,
    caps: tuple[int, int | None] = (0, None),
) -> list[JobStatus]:
    """Each held drop's status with the position and wait it has counting every job that
    will start before it. `caps`: `max_pending` and `per_station.max_pending`.

    The queue is played out in the order in force: each job that starts makes room, and the
    held drops join in drop order as they fit (as intake admits them), each at its place
    (`priority: high` ahead of `normal`; under `fair`, its station's turn). So a held `high`
    drop counts the jobs that start while the drops before it wait for room, not only the
    `high` ones queued now. Without caps, or where playing `fair` out would cost too much
    (`FAIR_PLAY_OUT_MOST`), a held drop is placed as if admitted now."""
    if not held:
        return []
    in_drop_order = sorted(held, key=lambda pair: pair[1].order)
    affordable = order.mode == "fifo" or (
        len(queued) * (len(queued) + len(held)) <= FAIR_PLAY_OUT_MOST
    )
    if caps[0] > 0 and affordable:
        starts = _played_out(_Line(order, queued), in_drop_order, caps)
    else:
        entries = list(queued)
        for rank, (status, hold) in enumerate(in_drop_order):
            entries.append(Entry((1, 0 if hold.high else 1, HELD_SEQ + rank), status, hold.preset))
        starts = order.arrange(entries, key=lambda e: e.key, name=lambda e: e.status.name)
    statuses = placed(estimator, starts, running, slots, now)
    return [s for e, s in zip(starts, statuses, strict=True) if e.key[2] >= HELD_SEQ]


# Under `fair` each start is a pass over the queue: beyond this many steps (queued jobs times
# the jobs and held drops to play out), held drops are placed as if admitted now.
FAIR_PLAY_OUT_MOST = 250_000


class _Line:
    """The queue as it plays out: under `fifo` a heap by key; under `fair` a copy of the order
    in force, taking each station's turn as the workers will."""

    def __init__(self, order: QueueOrder, queued: list[Entry]) -> None:
        self.order = order.copy()
        self.fifo = order.mode == "fifo"
        self.heap = [(entry.key, entry) for entry in queued]
        heapq.heapify(self.heap)

    def __len__(self) -> int:
        return len(self.heap)

    def push(self, entry: Entry) -> None:
        heapq.heappush(self.heap, (entry.key, entry))

    def pop(self) -> Entry:
        if self.fifo:
            return heapq.heappop(self.heap)[1]
        first = self.order.first(self.heap, key=lambda pair: pair[0], name=_name)
        assert first is not None  # never asked of an empty line
        self.heap.remove(first)
        heapq.heapify(self.heap)
        self.order.served(first[1].status.name)
        return first[1]


def _name(pair: tuple[tuple[int, int, int], Entry]) -> str:
    return pair[1].status.name


def _played_out(
    line: _Line, held: list[tuple[JobStatus, Hold]], caps: tuple[int, int | None]
) -> list[Entry]:
    """The order jobs start in: the queued jobs and the held drops (in drop order), each held
    drop joining the line once a start makes room for it."""
    most, per_station = caps
    stations: dict[str, int] = {}
    for _key, entry in line.heap:
        stations[station_of(entry.status.name)] = stations.get(station_of(entry.status.name), 0) + 1
    waiting = list(held)
    turn = itertools.count(HELD_SEQ)

    def admit() -> None:
        nonlocal waiting
        still: list[tuple[JobStatus, Hold]] = []
        for index, (status, hold) in enumerate(waiting):
            if len(line) >= most:
                still += waiting[index:]
                break
            station = station_of(status.name)
            if per_station is not None and stations.get(station, 0) >= per_station:
                still.append((status, hold))
                continue
            line.push(Entry((1, 0 if hold.high else 1, next(turn)), status, hold.preset))
            stations[station] = stations.get(station, 0) + 1
        waiting = still

    starts: list[Entry] = []
    admit()
    while len(line):
        entry = line.pop()
        starts.append(entry)
        stations[station_of(entry.status.name)] -= 1
        admit()
    # Drops that could never fit (a cap of 0) come last, in drop order.
    starts += [
        Entry((1, 0 if hold.high else 1, next(turn)), status, hold.preset)
        for status, hold in waiting
    ]
    return starts


class Drops:
    """Drops seen but not admitted yet, as the board shows them: each one's `waiting` status,
    and the hold of those held for room in the queue. The board's lock guards it."""

    def __init__(self) -> None:
        self.statuses: dict[str, JobStatus] = {}  # by job id
        self.holds: dict[str, Hold] = {}  # of those held for room

    def see(self, status: JobStatus, hold: Hold | None) -> None:
        self.statuses[status.job_id] = status
        self.holds.pop(status.job_id, None)
        if hold is not None:
            self.holds[status.job_id] = hold

    def forget(self, job_id: str) -> None:
        """It became a job, a refusal, or left inbox/."""
        self.statuses.pop(job_id, None)
        self.holds.pop(job_id, None)

    def place(
        self,
        order: QueueOrder,
        estimator: Estimator,
        queued: list[Entry],
        running: list[Entry],
        *,
        slots: int,
        now: float,
        files: Written,
        refresh: bool,
        caps: tuple[int, int | None] = (0, None),
    ) -> list[JobStatus]:
        """Held drops get their position and wait too; the statuses whose files need writing
        (`files`), the longest unwritten first."""
        held = [(s, self.holds[s.job_id]) for s in self.statuses.values() if s.job_id in self.holds]
        # Under the board's lock, and thousands may be held: placed for a refresh, or for a
        # drop whose file does not read held yet.
        if refresh or not all(files.moved_only(s) for s, _hold in held):
            for status in held_places(
                order, estimator, queued, running, held, slots=slots, now=now, caps=caps
            ):
                self.statuses[status.job_id] = status
        due = [s for s in self.statuses.values() if files.due(s, refresh)]
        return sorted(due, key=files.written_at)
