"""The folders under one root, and the names jobs take in them."""

from __future__ import annotations

import functools
import hashlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hotfolder import fsops

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# Suffixes that mark a file as belonging to the job named by what precedes them.
# Camera RAW files (SPEC "Photographers' files"), developed with LibRaw.
RAW_SUFFIXES = (".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2")
IMAGE_SUFFIXES = (
    *(".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"),
    *(".heic", ".heif", ".avif"),
    *RAW_SUFFIXES,
)
JOB_FILE_SUFFIXES = (
    *IMAGE_SUFFIXES,
    ".yaml",
    ".yml",
    ".job.json",
    ".status.json",
    ".reason.txt",
)


def _both_cases(suffixes: tuple[str, ...]) -> tuple[str, ...]:
    # Extensions are checked in lower and upper case, as cameras and Windows write them.
    return tuple(dict.fromkeys(s for suffix in suffixes for s in (suffix, suffix.upper())))


# Exact-path checks stay O(1) per name however full a folder gets. Each folder is checked
# for the endings a job's files can have there (a burst checks every name: 322 lstat calls
# with every ending in every folder, 180 so).
_TAKEN_SUFFIXES = _both_cases(JOB_FILE_SUFFIXES)
_INPUT_SUFFIXES = _both_cases((*IMAGE_SUFFIXES, ".yaml", ".yml"))
_MANIFEST_SUFFIXES = _both_cases((".job.json",))
_OUTBOX_SUFFIXES = _both_cases((".status.json", ".png", ".jpeg", ".webp"))


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def pending(self) -> Path:
        return self.root / "pending"

    @property
    def processing(self) -> Path:
        return self.root / "processing"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    @property
    def private(self) -> Path:
        return self.root / ".hotfolder"

    def manifests(self, folder: Path) -> Path:
        """The private folder holding the manifests of the jobs in pending/ or processing/."""
        return self.private / "spool" / folder.name

    @property
    def queue_json(self) -> Path:
        return self.outbox / "queue.json"

    def create(self) -> None:
        for folder in (
            self.inbox,
            self.pending,
            self.processing,
            self.outbox,
            self.archive,
            self.failed,
            self.private,
        ):
            fsops.ensure_dir(folder)

    # A job's files sit at FOLDER/NAME.SUFFIX: its name carries its subfolders, and an
    # empty parent adds nothing to a path, so no special case is needed for the top level.
    def status_path(self, name: str) -> Path:
        return self.outbox / f"{name}.status.json"

    @property
    def thumbs(self) -> Path:
        """Before/after thumbnails for outbox/index.html (hidden from Finder and Explorer)."""
        return self.outbox / ".thumbs"

    def thumb_path(self, name: str, which: str) -> Path:
        """`which`: before | after."""
        return self.thumbs / f"{name}.{which}.jpg"

    @property
    def page_path(self) -> Path:
        return self.outbox / "index.html"

    def reason_path(self, name: str) -> Path:
        return self.failed / f"{name}.reason.txt"

    @property
    def lock_path(self) -> Path:
        return self.private / "lock"

    @property
    def pause_flag(self) -> Path:
        """Exists while the service is paused (`hotfolder pause`, or made by hand)."""
        return self.private / "PAUSE"

    def relative(self, path: Path) -> str:
        """A path relative to the root, with forward slashes, as status JSON shows it."""
        return path.relative_to(self.root).as_posix()

    def name_taken(self, name: str) -> bool:
        """Whether any job already owns files named `name` in a service folder."""
        # Plain strings: this runs for every admitted and rejected drop, ~180 lstat calls each,
        # and pathlib's overhead would double its cost in a burst of thousands.
        for folder, suffixes in self._taken_endings:
            stem = f"{folder}/{name}"
            for suffix in suffixes:
                if os.path.lexists(stem + suffix):
                    return True
        return self._taken_folded(name)

    def _taken_folded(self, name: str) -> bool:
        """Whether a job owns files whose name differs from `name` only in letter case or
        Unicode form: one name on the Windows and macOS shares stations use, even where the
        server's own filesystem tells them apart (`IMG_1` and `img_1`)."""
        from hotfolder.names import fold  # names imports this module's suffixes

        parent, _slash, base = name.rpartition("/")
        own = fold(base) + "."
        for folder, suffixes in self._taken_endings:
            endings = {fold(suffix) for suffix in suffixes}
            try:
                entries = os.listdir(f"{folder}/{parent}" if parent else folder)
            except OSError:
                continue  # no such folder: nothing of that name
            for entry in entries:
                folded = fold(entry)
                if folded.startswith(own) and folded[len(own) - 1 :] in endings:
                    return True
        return False

    def taken_folders(self) -> list[str]:
        """The folders `name_taken` looks in (as strings), each holding jobs' names."""
        return [folder for folder, _suffixes in self._taken_endings]

    @functools.cached_property
    def _taken_endings(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Each service folder and the endings a job's files can have in it: its inputs in
        pending/, processing/ and archive/, its manifest beside them, its status and result
        in outbox/, and in failed/ anything (a refused drop keeps its own ending)."""
        return (
            (os.fspath(self.pending), _INPUT_SUFFIXES),
            (os.fspath(self.processing), _INPUT_SUFFIXES),
            (os.fspath(self.manifests(self.pending)), _MANIFEST_SUFFIXES),
            (os.fspath(self.manifests(self.processing)), _MANIFEST_SUFFIXES),
            (os.fspath(self.outbox), _OUTBOX_SUFFIXES),
            (os.fspath(self.archive), _INPUT_SUFFIXES),
            (os.fspath(self.failed), _TAKEN_SUFFIXES),
        )

    def carried_name(
        self,
        name: str,
        reserved: set[str] | None = None,
        *,
        taken: Callable[[str], bool] | None = None,
    ) -> tuple[str, bool]:
        """The unique name a new job takes, and whether it is the one asked for.

        False: every file of a job named so would not fit the filesystem's limit on one
        name (`NAME.status.json` the longest), so it gets a shortened unique name instead.
        `taken`: asked in place of `name_taken` (intake's `TakenNames`, which knows most
        answers without the disk).
        """
        unique = self.unique_name(name, reserved, taken=taken)
        if fits(unique):
            return unique, True
        return self.unique_name(shortened(name), reserved, taken=taken), False

    def unique_name(
        self,
        name: str,
        reserved: set[str] | None = None,
        *,
        taken: Callable[[str], bool] | None = None,
    ) -> str:
        """`name`, or `name~2`, `name~3`, … — the smallest that no job owns yet."""
        reserved = reserved or set()
        taken = taken or self.name_taken
        from hotfolder.names import fold  # names imports this module's suffixes

        held = {fold(other) for other in reserved}
        candidate = name
        n = 1
        while fold(candidate) in held or taken(candidate):
            n += 1
            candidate = f"{name}~{n}"
        return candidate


# The longest ending a job's name is given in any folder: `outbox/NAME.status.json`.
LONGEST_ENDING = ".status.json"
# A shortened name leaves room for a `~N` a later job of the same name may need.
_UNIQUE_ROOM = len("~999")
_DIGEST_CHARS = 8


def fits(name: str) -> bool:
    """Whether every file of a job of this name fits the filesystem's limit on one name."""
    base = name.rpartition("/")[2]
    return len(os.fsencode(base + LONGEST_ENDING)) <= fsops.NAME_MAX_BYTES


def shortened(name: str, ending: str = LONGEST_ENDING) -> str:
    """`folder/` + the start of the name + `~` + a digest of the whole: with `ending` (and a
    `~N`) it fits, and two long names that start alike still differ."""
    folder, slash, base = name.rpartition("/")
    digest = hashlib.sha256(os.fsencode(base)).hexdigest()[:_DIGEST_CHARS]
    room = fsops.NAME_MAX_BYTES - len(ending) - _UNIQUE_ROOM - 1 - _DIGEST_CHARS
    cut = os.fsencode(base)[:room]
    # Never end inside a UTF-8 character: drop continuation bytes and the lead byte they follow.
    while cut and cut[-1] & 0xC0 == 0x80:
        cut = cut[:-1]
    if cut and cut[-1] >= 0xC0:
        cut = cut[:-1]
    return f"{folder}{slash}{os.fsdecode(cut)}~{digest}"


def new_job_id(now: float | None = None) -> str:
    """A ULID: 48 bits of milliseconds, 80 random bits, Crockford base32; sorts by time."""
    ms = int((time.time() if now is None else now) * 1000)
    value = (ms << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))
