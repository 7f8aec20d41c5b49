"""From files in inbox/ to jobs in pending/: settle, pair, validate, admit — or reject.

The watcher only tells us which paths changed (`note`); everything else happens
in `tick`, on one thread, with the clock and lstat injectable, so tests can
drive it step by step. A periodic full rescan catches whatever events were lost.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Final

from hotfolder import fsops, images, rejection, sidecar
from hotfolder.config import Config
from hotfolder.errors import Reason, Rejected
from hotfolder.layout import IMAGE_SUFFIXES, Layout, new_job_id
from hotfolder.settle import StabilityTracker
from hotfolder.sidecar import JobSpec
from hotfolder.spool import JobState, Manifest, Spool
from hotfolder.status import Board, JobStatus, iso

log = logging.getLogger(__name__)

# Files people's machines leave next to real drops. They are never moved or rejected.
IGNORED_NAMES: Final = (
    ".DS_Store",  # macOS Finder
    "Thumbs.db",  # Windows Explorer thumbnails
    "desktop.ini",  # Windows folder settings
    "ehthumbs.db",  # Windows Media Center
)
IGNORED_PATTERNS: Final = (
    ".*",  # dotfiles, AppleDouble ._*, .~lock.* (LibreOffice), .TemporaryItems, .hf-* (ours)
    "~$*",  # Office owner files
    "*.tmp",
    "*.part",  # Firefox, curl, rsync --partial-dir
    "*.crdownload",  # Chrome
    "*.partial",  # Edge, IE
    "*.swp",  # vim
    "*.filepart",  # WinSCP
    "*.download",  # Safari
)
IGNORED_DIRS: Final = (
    "@eaDir",  # Synology thumbnails
    "#recycle",  # Synology recycle bin
    "#snapshot",  # Synology / QNAP snapshots
    "$RECYCLE.BIN",  # Windows
    "System Volume Information",  # Windows
    "lost+found",
)
CANCEL_SUFFIX: Final = ".cancel"
# How long one tick may spend deciding, admitting and rejecting before it yields to the loop
# (heartbeat, controls); what is left waits for the next tick. 10,000 files dropped at once
# take many ticks, and the service stays responsive throughout.
TICK_BUDGET_SECONDS: Final = 1.0


def is_ignored(name: str) -> bool:
    return (
        name in IGNORED_NAMES
        or name in (sidecar.DEFAULTS_NAME, "_defaults.yml")
        or any(fnmatchcase(name, pattern) for pattern in IGNORED_PATTERNS)
    )


def is_ignored_dir(name: str) -> bool:
    return name in IGNORED_DIRS or name.startswith(".")


def kind_of(name: str) -> str:
    lower = name.lower()
    if lower.endswith(IMAGE_SUFFIXES):
        return "image"
    if lower.endswith(sidecar.SIDECAR_SUFFIXES):
        return "sidecar"
    if lower.endswith(CANCEL_SUFFIX):
        return "cancel"
    return "other"


def split_name(name: str) -> tuple[str, str]:
    """`IMG_0042.JPG` -> (`IMG_0042`, `.JPG`)."""
    stem, dot, ext = name.rpartition(".")
    return (stem, dot + ext) if stem else (name, "")


@dataclass
class _Group:
    """The files of one folder that share a stem: an image, its sidecar, strays."""

    images: list[Path] = field(default_factory=list)
    sidecars: list[Path] = field(default_factory=list)
    settled: dict[Path, bool] = field(default_factory=dict)
    mtime_ns: dict[Path, int] = field(default_factory=dict)

    def members(self) -> list[Path]:
        return self.images + self.sidecars

    def all_settled(self) -> bool:
        return all(self.settled[p] for p in self.members())

    def first(self) -> tuple[int, Path]:
        """(mtime, path) of its oldest image, or of its oldest sidecar if it has no image."""
        return min((self.mtime_ns[p], p) for p in (self.images or self.sidecars))


@dataclass
class _Ready:
    """A pair that passed every check, waiting for its place in this tick's batch."""

    image: Path
    sidecar: Path | None
    spec: JobSpec
    mtime_ns: int


class Intake:
    def __init__(
        self,
        layout: Layout,
        config: Config,
        spool: Spool,
        board: Board,
        *,
        clock: Callable[[], float] = time.time,
        lstat: Callable[[Path], os.stat_result] = os.lstat,
        on_admit: Callable[[], None] = lambda: None,
        on_cancel: Callable[[str], object] = lambda name: None,
        hold: Callable[[], str | None] = lambda: None,
        tick_budget_seconds: float = TICK_BUDGET_SECONDS,
    ) -> None:
        self.layout = layout
        self.config = config
        self.spool = spool
        self.board = board
        self.clock = clock
        self.lstat = lstat
        self.on_admit = on_admit
        self.on_cancel = on_cancel
        # Says why admission must wait (e.g. the disk is nearly full); ready pairs stay put.
        self.hold = hold
        self.tracker = StabilityTracker(config.settle_seconds)
        self._inbox_prefix = os.fspath(layout.inbox) + "/"
        self._dirty: set[Path] = set()
        self._dirty_lock = threading.Lock()
        self._next_rescan = 0.0
        self._probes: dict[Path, tuple[int, int, Rejected | images.IncompleteImage | None]] = {}
        self._defaults: dict[Path, tuple[int, int, dict[str, Any] | Rejected]] = {}
        self.unreachable: str | None = None
        self._errors: dict[tuple[Path, str], str] = {}
        self.tick_budget_seconds = tick_budget_seconds
        # Whether the last tick left work undone for lack of time (the loop comes back at once).
        self.behind = False
        self._deadline = 0.0
        self._work = 0

    # --- input from the watcher (any thread) ---

    def note(self, path: str | Path) -> None:
        with self._dirty_lock:
            self._dirty.add(Path(path))

    def rescan_soon(self) -> None:
        self._next_rescan = 0.0

    def seconds_to_next_settle(self) -> float | None:
        """Seconds until the next tracked file settles, so the loop can wake just then."""
        now = self.clock()
        moment = self.tracker.next_settle(now)
        return None if moment is None else moment - now

    def seconds_to_rescan(self) -> float:
        """How long until the next periodic full rescan of inbox/ is due."""
        return max(0.0, self._next_rescan - self.clock())

    def busy(self) -> bool:
        """Whether some dropped file is still being watched (settling or waiting for its pair)."""
        return len(self.tracker) > 0

    # --- the loop body ---

    def tick(self) -> None:
        now = self.clock()
        inbox = self.layout.inbox
        try:
            os.stat(inbox)
            if not os.access(inbox, os.R_OK | os.X_OK):
                raise PermissionError(f"cannot read {inbox}")
        except OSError as e:
            # A share that drops is not "every file deleted": keep what we know, pause, retry.
            if self.unreachable is None:
                log.warning("inbox/ is unreachable (%s); intake paused until it is back", e)
            self.unreachable = f"inbox/ is unreachable: {e}"
            self.board.notes["intake"] = self.unreachable
            return
        if self.unreachable is not None:
            log.info("inbox/ is reachable again; intake resumed, rescanning")
            self.unreachable = None
            self.board.notes.pop("intake", None)
            self._next_rescan = 0.0

        with self._dirty_lock:
            paths, self._dirty = self._dirty, set()
        if now >= self._next_rescan:
            paths.update(self._walk(inbox))
            self._next_rescan = now + self.config.rescan_interval_seconds
        paths.update(self.tracker.tracked())

        self.behind = False
        self._start_budget()
        groups: dict[tuple[Path, str], _Group] = {}
        for path in paths:
            self._look(path, now, groups)

        # Pairs admitted together go in the order of their images' mtime, then name. Deciding
        # in that order and admitting each at once keeps it, and lets a tick that runs out of
        # time stop anywhere: the rest stay tracked and come first in the next tick.
        def oldest_first(entry: tuple[tuple[Path, str], _Group]) -> tuple[int, str]:
            mtime_ns, path = entry[1].first()
            return mtime_ns, self._relative(path)

        self._start_budget()
        held: bool | None = None
        admitted = False
        for (folder, stem), group in sorted(groups.items(), key=oldest_first):
            if self._spent():
                break
            self._work += 1
            try:
                item = self._decide(folder, stem, group, now)
                if item is None:
                    continue
                if held is None:
                    held = self.hold() is not None
                if held:
                    continue
                self._admit(item, now)
                admitted = True
            except Exception as e:
                # One bad file never stops the loop: log it and move on; it is retried next
                # tick. The same error again (say, failed/ is read-only) is logged once.
                problem = f"{type(e).__name__}: {e}"
                if self._errors.get((folder, stem)) != problem:
                    log.exception("intake: error while handling %s/%s", folder, stem)
                    self._errors[(folder, stem)] = problem
                    if len(self._errors) > 1000:
                        self._errors.clear()
        if admitted:
            self.on_admit()
        self.board.publish_if_dirty()

    def _start_budget(self) -> None:
        self._deadline = time.monotonic() + self.tick_budget_seconds
        self._work = 0

    def _spent(self) -> bool:
        """Whether this tick has used its time (having done at least one thing); if so, say so."""
        spent = self._work > 0 and time.monotonic() >= self._deadline
        self.behind = self.behind or spent
        return spent

    # --- scanning ---

    def _walk(self, top: Path) -> Iterable[Path]:
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        if entry.is_dir(follow_symlinks=False):
                            if kind_of(entry.name) == "image":
                                yield Path(entry.path)  # rejected in _look
                            elif not is_ignored_dir(entry.name):
                                stack.append(Path(entry.path))
                        elif not is_ignored(entry.name):
                            yield Path(entry.path)
            except OSError as e:
                log.warning("cannot list %s: %s", folder, e)

    def _look(self, path: Path, now: float, groups: dict[tuple[Path, str], _Group]) -> None:
        try:
            info = self.lstat(path)
        except FileNotFoundError:
            self._forget(path)
            return
        except OSError as e:
            log.warning("cannot look at %s: %s", path, e)
            return
        name = path.name
        if any(is_ignored_dir(part) for part in self._relative(path).split("/")[:-1]):
            return
        if name in (sidecar.DEFAULTS_NAME, "_defaults.yml"):
            self._defaults.pop(path, None)
            return
        if stat.S_ISDIR(info.st_mode):
            if kind_of(name) == "image":
                self._reject([path], Reason.unsupported_type, f"{name} is a folder, not an image")
                return
            if not is_ignored_dir(name):
                for inner in self._walk(path):
                    if inner not in self.tracker:
                        self._look(inner, now, groups)
            return
        if is_ignored(name):
            return
        if not stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode):
            what = "a symbolic link" if stat.S_ISLNK(info.st_mode) else "not a plain file"
            self._reject(
                [path],
                Reason.unsupported_type,
                f"{name} is {what}; drop the file itself",
            )
            return
        if info.st_nlink > 1:
            self._reject(
                [path],
                Reason.unsupported_type,
                f"{name} has {info.st_nlink} hard links; drop a copy of the file, not a link",
            )
            return
        settled = self.tracker.observe(path, info.st_size, info.st_mtime_ns, now)
        kind = kind_of(name)
        if kind == "other":
            if settled and not self._spent():
                self._work += 1
                ext = split_name(name)[1] or "(none)"
                self._reject(
                    [path],
                    Reason.unsupported_type,
                    f"{name}: files of type {ext} are not handled here",
                    "Drop images (jpg jpeg png webp tif tiff bmp) with a NAME.yaml sidecar.",
                )
            return
        if kind == "cancel":
            if settled:
                relative = self._relative(path)
                self.on_cancel(split_name(relative)[0])
                fsops.remove(path)
                self._forget(path)
            return
        stem = split_name(name)[0]
        group = groups.setdefault((path.parent, stem), _Group())
        (group.images if kind == "image" else group.sidecars).append(path)
        group.settled[path] = settled
        group.mtime_ns[path] = info.st_mtime_ns

    # --- deciding ---

    def _decide(self, folder: Path, stem: str, group: _Group, now: float) -> _Ready | None:
        wait = self.config.sidecar_wait_seconds
        images_ = sorted(group.images)
        sidecars = sorted(group.sidecars)
        if images_ and sidecars and (len(images_) > 1 or len(sidecars) > 1):
            if group.all_settled():
                names = ", ".join(p.name for p in group.members())
                self._reject(
                    images_ + sidecars,
                    Reason.ambiguous,
                    f"{names}: more than one file for the job {stem}",
                    "Drop exactly one image and one NAME.yaml (or NAME.yml) per name.",
                )
            return None

        if not images_:
            for lone in sidecars:
                settled_at = self.tracker.settled_at(lone)
                if group.settled[lone] and settled_at is not None and now >= settled_at + wait:
                    self._reject(
                        [lone],
                        Reason.no_image,
                        f"{lone.name} has no image next to it after {wait:g} s",
                        f"Drop the image ({stem}.jpg, .png, …) in the same folder as the sidecar.",
                    )
            return None

        if len(images_) > 1:
            # Several images and no sidecar: each stands alone (defaults may make them jobs).
            for image in images_:
                alone = _Group(
                    images=[image],
                    settled={image: group.settled[image]},
                    mtime_ns={image: group.mtime_ns[image]},
                )
                item = self._decide(folder, stem, alone, now)
                if item is not None:
                    return item
            return None

        image = images_[0]
        side = sidecars[0] if sidecars else None
        if not group.settled[image] or (side is not None and not group.settled[side]):
            return None
        problem = self._probe(image, now)
        if isinstance(problem, Rejected):
            self._reject([image] + ([side] if side else []), problem.code, problem.message)
            return None
        if isinstance(problem, images.IncompleteImage):
            return None

        layers = self._layers(image)
        if isinstance(layers, Rejected):
            self._reject([image] + ([side] if side else []), layers.code, layers.message)
            return None
        if side is None:
            settled_at = self.tracker.settled_at(image) or now
            if sidecar.has_instruction(layers):
                # Defaults make it a job; a short grace lets a sidecar written just after still win.
                if now < settled_at + self.config.settle_seconds:
                    return None
            else:
                if now >= settled_at + wait:
                    self._reject(
                        [image],
                        Reason.no_sidecar,
                        f"{image.name} has no sidecar after {wait:g} s",
                        f"Drop {stem}.yaml with at least `instruction: ...` next to the image, "
                        "or put an instruction in a _defaults.yaml of its folder.",
                    )
                return None
        try:
            if side is not None:
                layers = [
                    *layers,
                    (
                        side.name,
                        sidecar.read_layer(side, max_bytes=self.config.limits.max_sidecar_bytes),
                    ),
                ]
            spec = sidecar.resolve(layers, config=self.config)
        except Rejected as e:
            self._reject([image] + ([side] if side else []), e.code, e.message, e.details)
            return None
        return _Ready(image=image, sidecar=side, spec=spec, mtime_ns=group.mtime_ns[image])

    def _probe(self, image: Path, now: float) -> Rejected | images.IncompleteImage | None:
        info = self.lstat(image)
        cached = self._probes.get(image)
        if cached is not None and cached[:2] == (info.st_size, info.st_mtime_ns):
            result = cached[2]
        else:
            result = None
            try:
                images.probe(image, limits=self.config.limits)
            except (Rejected, images.IncompleteImage) as e:
                result = e
            self._probes[image] = (info.st_size, info.st_mtime_ns, result)
        if isinstance(result, images.IncompleteImage):
            settled_at = self.tracker.settled_at(image) or now
            if now >= settled_at + self.config.incomplete_image_seconds:
                return Rejected(
                    Reason.invalid_image,
                    f"{image.name} is truncated and did not complete within "
                    f"{self.config.incomplete_image_seconds:g} s ({result})",
                )
        return result

    def _layers(self, image: Path) -> list[tuple[str, dict[str, Any]]] | Rejected:
        """The `_defaults.yaml` files from inbox/ down to the image's folder, farthest first."""
        layers: list[tuple[str, dict[str, Any]]] = []
        folder = image.parent
        chain = [folder, *folder.parents]
        inbox = self.layout.inbox
        for directory in reversed(chain[: chain.index(inbox) + 1] if inbox in chain else []):
            path = directory / sidecar.DEFAULTS_NAME
            try:
                info = os.lstat(path)
            except FileNotFoundError:
                continue
            cached = self._defaults.get(path)
            if cached is None or cached[:2] != (info.st_size, info.st_mtime_ns):
                try:
                    mapping: dict[str, Any] | Rejected = sidecar.read_layer(
                        path,
                        max_bytes=self.config.limits.max_sidecar_bytes,
                        source=self._relative(path),
                    )
                    if isinstance(mapping, dict):
                        sidecar.check_layer(mapping, source=self._relative(path))
                except Rejected as e:
                    mapping = e
                cached = (info.st_size, info.st_mtime_ns, mapping)
                self._defaults[path] = cached
            value = cached[2]
            if isinstance(value, Rejected):
                return value
            layers.append((self._relative(path), value))
        return layers

    # --- outcomes ---

    def _relative(self, path: Path) -> str:
        # Plain string slicing: this runs for every tracked file on every tick.
        text = os.fspath(path)
        if text.startswith(self._inbox_prefix):
            return text[len(self._inbox_prefix) :]
        return path.relative_to(self.layout.inbox).as_posix()

    def _forget(self, path: Path) -> None:
        self.tracker.forget(path)
        self._probes.pop(path, None)

    def _admit(self, item: _Ready, now: float) -> None:
        files = [item.image] + ([item.sidecar] if item.sidecar else [])
        if self.spool.pending_count() >= self.config.max_pending:
            self._reject(
                files,
                Reason.queue_full,
                f"the queue is full ({self.config.max_pending} jobs waiting)",
                "Drop the files again once the queue has room, or raise max_pending.",
                spec=item.spec,
            )
            return
        relative = self._relative(item.image)
        name = self.layout.unique_name(split_name(relative)[0])
        base = name.rpartition("/")[2]
        seed = item.spec.seed if item.spec.seed is not None else secrets.randbits(32)
        manifest = Manifest(
            job_id=new_job_id(now),
            name=name,
            seq=self.spool.next_seq(),
            priority=item.spec.priority,
            created_at=iso(now) or "",
            source=f"inbox/{relative}",
            image=base + split_name(item.image.name)[1],
            sidecar=base + split_name(item.sidecar.name)[1] if item.sidecar else None,
            inbox_image=self.layout.relative(item.image),
            inbox_sidecar=self.layout.relative(item.sidecar) if item.sidecar else None,
            spec=item.spec.model_dump(mode="json"),
            seed=seed,
        )
        self.spool.admit(manifest)
        self.board.queued(manifest)
        for path in files:
            self._forget(path)
        log.info("admitted %s (%s) from %s", name, manifest.job_id, manifest.source)

    def _reject(
        self,
        files: list[Path],
        code: Reason,
        message: str,
        details: str = "",
        *,
        spec: JobSpec | None = None,
    ) -> None:
        """Move a drop to failed/ with its reason file and a failed status; never loses a file."""
        now = self.clock()
        first = files[0]
        relative = self._relative(first)
        name = self.layout.unique_name(split_name(relative)[0])
        target = self.layout.failed / name
        target_dir, base = target.parent, target.name
        status = JobStatus(
            job_id=new_job_id(now),
            name=name,
            status=JobState.failed,
            created_at=iso(now),
            completed_at=iso(now),
            source=f"inbox/{relative}",
            instruction=spec.instruction if spec else None,
            model=spec.preset if spec else None,
            error_code=code.value,
            error=message,
            attempts=0,
        )
        moves = [
            (
                self.layout.relative(path),
                self.layout.relative(target_dir / (base + split_name(path.name)[1])),
            )
            for path in files
        ]
        rejection.reject(
            self.layout,
            self.board,
            rejection.Rejection(
                name=name,
                moves=moves,
                code=code.value,
                message=message,
                details=details,
                status=status.to_json(),
            ),
        )
        for path in files:
            self._forget(path)
        log.warning("rejected %s: %s: %s", relative, code.value, message)
