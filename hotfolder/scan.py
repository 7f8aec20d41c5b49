"""Finding drops under inbox/: a walk that skips junk, and what can never be a drop."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from hotfolder.errors import Reason
from hotfolder.names import is_ignored, is_ignored_dir, kind_of, split_name
from hotfolder.pairing import Refusal

log = logging.getLogger(__name__)


def walk(top: Path) -> Iterator[Path]:
    """Every file under `top` that is not junk, and every folder named like an image.

    Junk folders (`@eaDir`, dotfolders, …) are not entered. A folder that cannot be listed
    is logged and skipped; the next rescan tries again.
    """
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        if kind_of(entry.name) == "image":
                            yield Path(entry.path)  # to be rejected: a folder is not an image
                        elif not is_ignored_dir(entry.name):
                            stack.append(Path(entry.path))
                    elif not is_ignored(entry.name):
                        yield Path(entry.path)
        except OSError as e:
            log.warning("cannot list %s: %s", folder, e)


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


def a_folder(path: Path) -> Refusal:
    """A folder named like an image."""
    return _unsupported(path, f"{path.name} is a folder, not an image")


def unknown_type(path: Path) -> Refusal:
    """A file that is neither an image, a sidecar nor a cancel file."""
    ext = split_name(path.name)[1] or "(none)"
    return _unsupported(
        path,
        f"{path.name}: files of type {ext} are not handled here",
        "Drop images (jpg jpeg png webp tif tiff bmp) with a NAME.yaml sidecar.",
    )


def _unsupported(path: Path, message: str, details: str = "") -> Refusal:
    return Refusal((path,), Reason.unsupported_type, message, details)
