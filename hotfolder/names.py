"""Which names in inbox/ are drops, and of what kind: the junk rules and the name helpers."""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from typing import Final

from hotfolder.layout import IMAGE_SUFFIXES
from hotfolder.sidecar import DEFAULTS_NAMES, SIDECAR_SUFFIXES

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
    "*.reason.txt",  # ours, dragged back from failed/ with its drop (issue 14): never a job
    "*.ref[12]._*",  # ours: a job's copy of a reference image (assets.COPY_PATTERN), dragged back
)
# The patterns as one expression (fnmatchcase's own translation): a tick asks for every file it
# looks at, ten patterns each (issue 14: thousands of files per tick in a burst).
# In any letter case, as Windows clients write them (`Desktop.ini`, `FOO.TMP`).
_IGNORED: Final = re.compile(
    "|".join(fnmatch.translate(pattern) for pattern in IGNORED_PATTERNS), re.IGNORECASE
)
_IGNORED_NAMES: Final = frozenset(name.lower() for name in IGNORED_NAMES)
IGNORED_DIRS: Final = (
    "@eaDir",  # Synology thumbnails
    "#recycle",  # Synology recycle bin
    "#snapshot",  # Synology / QNAP snapshots
    "$RECYCLE.BIN",  # Windows
    "System Volume Information",  # Windows
    "lost+found",
)
CANCEL_SUFFIX: Final = ".cancel"


def is_asset(name: str) -> bool:
    """A file whose name starts with `_`: a folder's `_defaults.yaml`, or a reference image
    that sidecars name in `images:`. Never a job, never moved; it may serve many jobs."""
    return name.startswith("_")


def is_junk(name: str) -> bool:
    """What people's machines (and ours) leave beside drops, or a folder's `_defaults.yaml`."""
    return (
        name.lower() in _IGNORED_NAMES or name in DEFAULTS_NAMES or _IGNORED.match(name) is not None
    )


def is_ignored(name: str) -> bool:
    """Junk, or an asset (`_defaults.yaml`, `_logo.png`): never a drop, never moved."""
    return is_asset(name) or is_junk(name)


_IGNORED_DIRS: Final = frozenset(name.lower() for name in IGNORED_DIRS)


def is_ignored_dir(name: str) -> bool:
    return name.lower() in _IGNORED_DIRS or name.startswith(".")


def kind_of(name: str) -> str:
    """`image`, `sidecar`, `cancel` or `other`, from the extension in any case."""
    lower = name.lower()
    if lower.endswith(IMAGE_SUFFIXES):
        return "image"
    if lower.endswith(SIDECAR_SUFFIXES):
        return "sidecar"
    if lower.endswith(CANCEL_SUFFIX):
        return "cancel"
    return "other"


def split_name(name: str) -> tuple[str, str]:
    """`IMG_0042.JPG` -> (`IMG_0042`, `.JPG`)."""
    stem, dot, ext = name.rpartition(".")
    return (stem, dot + ext) if stem else (name, "")


def fold(name: str) -> str:
    """A name as Windows and macOS shares compare it: NFC (macOS writes NFD), any letter case."""
    return unicodedata.normalize("NFC", name).lower()
