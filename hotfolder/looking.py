"""Looking at the paths of one intake tick: each is checked, its settling observed, and filed
into its drop's group (the folder and the stem, folded as Windows and macOS shares fold
names); what needs no pairing is acted on at once, through the intake (a link, a file of
unknown type, a `NAME.cancel`).

A settled file that nothing was noted for is filed as its last look left it
(`scan.Sightings.take`); `again` looks at a group's files afresh before it is decided.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from hotfolder.budget import TickBudget
from hotfolder.defaults import FolderDefaults
from hotfolder.names import fold, is_ignored, is_ignored_dir, kind_of, split_name
from hotfolder.pairing import Group, Refusal
from hotfolder.scan import Quiet, not_a_plain_file, same_stem, unknown_type, walk
from hotfolder.settle import StabilityTracker
from hotfolder.sidecar import DEFAULTS_NAMES
from hotfolder.writers import Writers

log = logging.getLogger("hotfolder.intake")

GroupKey = tuple[Path, str]  # (folder, stem folded)
Groups = dict[GroupKey, Group]


class Reject(Protocol):
    """Intake's `_reject`: the refusal, and the group it ends (its waiting status's name)."""

    def __call__(self, refusal: Refusal, *, key: GroupKey | None = None) -> None: ...


class Looking:
    def __init__(
        self,
        inbox: Path,
        tracker: StabilityTracker,
        writers: Writers,
        defaults: FolderDefaults,
        budget: TickBudget,
        *,
        reject: Reject,
        cancel: Callable[[Path], None],
        forget: Callable[[Path], None],
        lstat: Callable[[Path], os.stat_result] = os.lstat,
    ) -> None:
        self.tracker = tracker
        self.writers = writers
        self.defaults = defaults
        self.budget = budget
        self.reject = reject
        self.cancel = cancel  # a settled NAME.cancel
        self.forget = forget  # intake stops tracking a path (calls `dropped` here)
        self.lstat = lstat
        self._inbox = inbox
        self._prefix = os.fspath(inbox) + "/"
        # Each tracked file's group and kind, and each group's stem as named in inbox/: a
        # tick files every tracked file (thousands, with drops held for room).
        self._filed: dict[Path, tuple[GroupKey, str]] = {}
        self._stems: dict[GroupKey, str] = {}
        self._unlookable: set[Path] = set()  # tracked files that cannot be looked at now

    def groups(self, paths: Iterable[Path], quiet: Iterable[Quiet], now: float) -> Groups:
        """The groups of this tick: `paths` looked at, `quiet` as their last look left them."""
        groups: Groups = {}
        for path in paths:
            self.look(path, now, groups)
        for path, mtime_ns in quiet:
            self._file(path, True, mtime_ns, groups, quiet=True)
        return groups

    def again(self, key: GroupKey, group: Group, now: float) -> Group | None:
        """The group as its files are now (None: they are gone, or one cannot be looked at)."""
        regrouped: Groups = {}
        for path in group.members():
            self.look(path, now, regrouped)
            if path in self._unlookable:
                return None
        return regrouped.get(key)

    def stems(self, groups: Groups) -> set[str]:
        """Each group's stem as named in inbox/ (`inbox/FOLDER/STEM`), kept from tick to tick."""
        known, self._stems = self._stems, {}
        for folder, stem in groups:
            self._stems[folder, stem] = known.get((folder, stem)) or (
                "inbox/" + self.relative(folder / stem)
            )
        return set(self._stems.values())

    def relative(self, path: Path) -> str:
        # Plain string slicing: this runs for every tracked file on every tick.
        text = os.fspath(path)
        if text.startswith(self._prefix):
            return text[len(self._prefix) :]
        return path.relative_to(self._inbox).as_posix()

    def dropped(self, path: Path) -> None:
        """The path is no longer tracked."""
        self._filed.pop(path, None)
        self._unlookable.discard(path)

    def look(self, path: Path, now: float, groups: Groups) -> None:
        """Track one path and file it into its group; act at once on what needs no pairing."""
        try:
            info = self.lstat(path)
        except FileNotFoundError:
            self.forget(path)
            return
        except OSError as e:
            # A folder that cannot be read now (its permissions, a share's hiccup) is not a
            # deleted drop: its files stay as last seen, undecided, until they can be looked
            # at (said once, not ten times a second).
            if path not in self._unlookable:
                log.warning("cannot look at %s (%s); kept as last seen until it can be", path, e)
                self._unlookable.add(path)
            mtime_ns = self.tracker.mtime_ns(path)
            if mtime_ns is not None:
                self._file(path, True, mtime_ns, groups, quiet=True)
            return
        if path in self._unlookable:
            self._unlookable.discard(path)
            self.tracker.restart(now, [path])  # the time it was away counts towards no wait
            log.info("%s can be looked at again", path)
        name = path.name
        if any(is_ignored_dir(part) for part in self.relative(path).split("/")[:-1]):
            return
        if name in DEFAULTS_NAMES:
            self.defaults.forget(path)
            return
        if stat.S_ISDIR(info.st_mode):
            self._look_inside(path, now, groups)
            return
        if is_ignored(name):
            return
        unfit = not_a_plain_file(path, info)
        if unfit is not None:
            key = (path.parent, fold(split_name(name)[0]))
            self.reject(self._with_its_sidecars(unfit, path), key=key)
            return
        settled = self.tracker.observe(
            path,
            info.st_size,
            info.st_mtime_ns,
            now,
            held=lambda unchanged: self.writers.holding(path, info, unchanged),
        )
        self._file(path, settled, info.st_mtime_ns, groups)

    @staticmethod
    def _with_its_sidecars(refusal: Refusal, path: Path) -> Refusal:
        """An image refused as it is (a link, a hard-linked file) takes its sidecar with it,
        so the sidecar does not wait on as a drop of its own for an image that was there."""
        if kind_of(path.name) != "image":
            return refusal
        sidecars = same_stem(path.parent, fold(split_name(path.name)[0]), ("sidecar",))
        return replace(refusal, files=(*refusal.files, *sidecars))

    def _file(
        self, path: Path, settled: bool, mtime_ns: int, groups: Groups, *, quiet: bool = False
    ) -> None:
        """Act on a tracked file that needs no pairing, or file it into its group."""
        filed = self._filed.get(path)
        if filed is None:
            # Pairing ignores letter case and Unicode form, as Windows and macOS shares do.
            key = (path.parent, fold(split_name(path.name)[0]))
            filed = self._filed[path] = (key, kind_of(path.name))
        key, kind = filed
        if kind == "other":
            if settled and not self.budget.spent():
                self.budget.used()
                self.reject(unknown_type(path))
        elif kind == "cancel":
            if settled:
                self.cancel(path)
        else:
            group = groups.setdefault(key, Group())
            group.add(path, kind, settled=settled, mtime_ns=mtime_ns, quiet=quiet)

    def _look_inside(self, folder: Path, now: float, groups: Groups) -> None:
        """A folder that appeared (whatever its name: `Holiday.JPG/` too): look at its files."""
        if not is_ignored_dir(folder.name):
            for inner in walk(folder):
                if inner not in self.tracker:
                    self.look(inner, now, groups)
