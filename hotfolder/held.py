"""Room in the queue, and the drops that wait in inbox/ for it (SPEC: "Waiting, overflow and
retries", "Per-station limits and fair turns").

`Room` counts, once per tick, how many jobs the queue and each station hold against
`max_pending` and `per_station.max_pending`, and words the `queue_full` refusal. Under
`overflow: hold` a ready drop that finds no room stays in inbox/ untouched: `Held` remembers
it as validated, so it is not probed or read again every tick while it waits (only if one
of its files changes), and the intake admits held drops in drop order as room frees.

Drop order is the one rule intake always uses: the image's modification time, then its
path under inbox/. It is read from the files themselves, so it is the same after a restart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from hotfolder.config import Config
from hotfolder.errors import Reason
from hotfolder.jobs import Jobs
from hotfolder.names import fold, kind_of
from hotfolder.order import station_of
from hotfolder.pairing import Group, Ready, Refusal
from hotfolder.records import Seen
from hotfolder.scan import same_stem

GroupKey = tuple[Path, str]  # (folder, stem), as intake groups files

# What a held drop's `waiting` status says.
FOR_ROOM = "waiting for room in the queue"

RETRY = (
    "Leave the files in failed/: `hotfolder retry --code queue_full` puts them back under "
    "their own names, oldest first, once the queue has room"
)
HOLD = (
    "To have drops wait in inbox/ for room instead of coming here, set `overflow: hold` "
    "in the configuration."
)


class Room:
    """The queue's room, counted once per tick and kept up to date as the tick admits.

    A worker that takes a job meanwhile only frees room; the next tick sees it."""

    def __init__(self, jobs: Jobs, config: Config) -> None:
        self.jobs = jobs
        self.config = config
        self._queued: int | None = None
        self._stations: dict[str, int] = {}

    def _count(self) -> int:
        if self._queued is None:
            queued = self.jobs.queued()
            self._queued = len(queued)
            for manifest in queued:
                station = station_of(manifest.name)
                self._stations[station] = self._stations.get(station, 0) + 1
        return self._queued

    def took(self, station: str) -> None:
        """A job of `station` was just admitted."""
        self._queued = self._count() + 1
        self._stations[station] = self._stations.get(station, 0) + 1

    def full(self, station: str) -> str | None:
        """What is full for a drop of `station` (the whole queue or the station), or None."""
        if self._count() >= self.config.max_pending:
            return "queue"
        cap = self.config.per_station.max_pending
        if cap is not None and self._stations.get(station, 0) >= cap:
            return "station"
        return None

    def refusal(self, item: Ready, station: str) -> Refusal | None:
        """Why `item` does not fit (`queue_full`, saying how many jobs are ahead), or None."""
        full = self.full(station)
        if full is None:
            return None
        ahead = self._count() + len(self.jobs.in_flight())
        so = f"{ahead} {'job is' if ahead == 1 else 'jobs are'} ahead of it"
        if full == "queue":
            most = self.config.max_pending
            message = f"the queue is full ({most} {'job' if most == 1 else 'jobs'} waiting): {so}"
            details = f"{RETRY} (or raise max_pending).\n\n{HOLD}"
        else:
            where = f"station {station}/" if station else "inbox/ itself (a station of its own)"
            cap = self.config.per_station.max_pending
            message = f"{where} already has {cap} jobs waiting (per_station.max_pending): {so}"
            details = f"{RETRY} (or raise per_station.max_pending).\n\n{HOLD}"
        return Refusal(item.files, Reason.queue_full, message, details)


@dataclass(frozen=True)
class _Drop:
    ready: Ready
    files: dict[Path, int]  # each file of its group, with its mtime (ns) when it was held
    name: str  # the job name its status shows
    references: bool  # it names reference images (read again at admission)
    since: float  # when it was first held: held drops come in in that order


class Held:
    """Ready drops waiting in inbox/ for room, as validated when they were first held."""

    def __init__(self) -> None:
        self._drops: dict[GroupKey, _Drop] = {}

    def __len__(self) -> int:
        return len(self._drops)

    def files(self) -> int:
        """How many files the held drops are (the intake keeps watching them)."""
        return sum(len(drop.files) for drop in self._drops.values())

    def keep(
        self, key: GroupKey, ready: Ready, group: Group, shown: Seen | None, since: float
    ) -> None:
        """Hold `ready` (shown as the job `shown` names), the pair the files of `group` came
        to, since `since`. Its reference images' bytes are not kept: thousands held would
        hold them thousands of times over."""
        light = replace(ready, references=())
        name = shown.name if shown is not None else ""
        files = dict(group.mtime_ns)
        self._drops[key] = _Drop(light, files, name, bool(ready.references), since)

    def since(self, key: GroupKey) -> float | None:
        """When a drop still held was first held (None: it is not held). Held drops come in
        in that order, before drops decided for the first time, so that no image's mtime
        (years old, or in the future) lets newer drops overtake a held one for ever."""
        drop = self._drops.get(key)
        return None if drop is None else drop.since

    def waits(self, key: GroupKey, group: Group, room: Room) -> bool:
        """Whether a held drop still finds no room: nothing changes for it this tick, so a
        full queue costs each held drop a look, not a decision. A drop whose files changed
        (or are no longer just those it was held with) is forgotten and decided afresh."""
        drop = self._drops.get(key)
        if drop is None:
            return False
        if group.mtime_ns != drop.files or not group.all_settled():
            del self._drops[key]
            return False
        return room.full(station_of(drop.name)) is not None

    def ready(self, key: GroupKey) -> Ready | None:
        """The held drop's pair as validated, to admit now; None if it has reference images:
        those are read at admission (`assets`), so it is decided afresh then."""
        drop = self._drops.get(key)
        return None if drop is None or drop.references else drop.ready

    def cancel(self, name: str) -> tuple[GroupKey, Ready, Refusal, str] | None:
        """A held drop shown as job `name` is cancelled (`NAME.cancel` or `hotfolder cancel`):
        its key, its pair, its refusal as `cancelled` and the name it is shown with; None if
        no held drop is `name`."""
        matches = [k for k, drop in self._drops.items() if drop.name == name]
        if not matches:
            # As for queued jobs, letter case and Unicode form do not matter if one name fits.
            matches = [k for k, drop in self._drops.items() if fold(drop.name) == fold(name)]
        if len(matches) != 1:
            return None
        drop = self._drops[matches[0]]
        return matches[0], drop.ready, _cancelled(drop.ready.files, drop.name), drop.name

    def release(self, key: GroupKey) -> None:
        """The drop was admitted, refused or changed: it is no longer held."""
        self._drops.pop(key, None)

    def sweep(self, present: set[GroupKey]) -> None:
        """Drops no longer in inbox/ (deleted by the station) are no longer held."""
        for key in [k for k in self._drops if k not in present]:
            del self._drops[key]


def cancel_left(inbox: Path, stem: str, name: str) -> tuple[GroupKey, Refusal] | None:
    """The drop an earlier run held for room as job `name` (its status, left in outbox/, says
    so), cancelled before any tick has looked at inbox/ (`hotfolder cancel` with the service
    stopped): its group's key and its refusal as `cancelled`; None if its files are gone.
    `stem`: `inbox/RELATIVE` without extension, as its status's source."""
    relative = PurePosixPath(stem.removeprefix("inbox/"))
    folder = inbox.joinpath(*relative.parent.parts)
    own = fold(relative.name)
    files = sorted(  # the image first: the refusal is named after it
        same_stem(folder, own, ("image", "sidecar")),
        key=lambda path: (kind_of(path.name) != "image", path.name),
    )
    if not files:
        return None
    return (folder, own), _cancelled(tuple(files), name)


def _cancelled(files: tuple[Path, ...], name: str) -> Refusal:
    message = "cancelled while it waited in inbox/ for room in the queue"
    details = f"`hotfolder retry {name}` puts it into the queue after all."
    return Refusal(files, Reason.cancelled, message, details)
