"""Reference images for edit-plus: the `_`-named asset files a request's `images:` names.

An asset is found in the image's folder or a folder above it up to `inbox/`, the nearest
first. It is read once, at admission, checked like a dropped image (size, dimensions, real
image content), and its bytes become the job's own copy: a later change to the asset does
not change a job already queued. Every problem is `invalid_sidecar`, naming the file and
what to do, since the fix is in the sidecar or beside it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from hotfolder import fsops, images, rawfiles
from hotfolder.config import Limits
from hotfolder.errors import Reason, Rejected

# A copy beside the job's files: `NAME.ref1._logo.png`, or `NAME.ref1._.png` when the asset's
# name would make it too long for the filesystem. Intake ignores the pattern (names.py), so a
# copy dragged back from archive/ or failed/ with its job never becomes a job of its own.
COPY_PATTERN = "*.ref[12]._*"


@dataclass(frozen=True)
class Asset:
    """One reference as the job takes it: the name written, where it was found, its bytes."""

    name: str
    found: Path
    data: bytes
    sha256: str

    def copy_name(self, base: str, index: int) -> str:
        """The copy's file name beside a job whose files are named `base`.*; `index` from 1."""
        full = f"{base}.ref{index}.{self.name}"
        if len(os.fsencode(full)) <= fsops.NAME_MAX_BYTES:
            return full
        return f"{base}.ref{index}._{Path(self.name).suffix.lower()}"


def find(name: str, image: Path, inbox: Path) -> Path | None:
    """The nearest `name` from the image's folder up to inbox/, or None."""
    folder = image.parent
    chain = [folder, *folder.parents]
    if inbox not in chain:
        return None
    for directory in chain[: chain.index(inbox) + 1]:
        candidate = directory / name
        if os.path.lexists(candidate):
            return candidate
    return None


def take(
    names: list[str], image: Path, inbox: Path, *, limits: Limits, source: str
) -> tuple[Asset, ...]:
    """Find, read and check each named asset for the image; `source` names the file that
    asked for them (a sidecar or a `_defaults.yaml`) in messages."""
    return tuple(_take_one(name, image, inbox, limits=limits, source=source) for name in names)


def _take_one(name: str, image: Path, inbox: Path, *, limits: Limits, source: str) -> Asset:
    where = image.parent.relative_to(inbox).as_posix() if image.parent != inbox else ""
    path = find(name, image, inbox)
    if path is None:
        folder = f"inbox/{where}" if where else "inbox/"
        raise Rejected(
            Reason.invalid_sidecar,
            f"{source}: reference image {name} is missing: no {name} in {folder} or a folder "
            "above it; put the file there, or fix the name in `images:`",
        )
    shown = path.relative_to(inbox).as_posix()
    suffix = path.suffix.lower()
    try:
        images.supported_suffix(path)
        if rawfiles.is_raw(suffix):
            raise Rejected(Reason.unsupported_type, f"{name} is a camera RAW file")
        data = fsops.read_regular(path, limits.max_file_bytes)
        _probe(data, name=name, suffix=suffix, limits=limits)
    except fsops.FileTooBig as e:
        raise _bad(source, shown, f"it is {e.size:,} bytes; the limit is {e.max_bytes:,}") from e
    except fsops.NotARegularFile as e:
        raise _bad(source, shown, "it is not a plain file (a link, folder or pipe)") from e
    except Rejected as e:
        raise _bad(source, shown, e.message) from e
    except images.IncompleteImage as e:
        raise _bad(source, shown, str(e)) from e
    except OSError as e:
        raise _bad(source, shown, f"it cannot be read ({e.strerror or e})") from e
    return Asset(name=name, found=path, data=data, sha256=hashlib.sha256(data).hexdigest())


def _probe(data: bytes, *, name: str, suffix: str, limits: Limits) -> None:
    try:
        images.probe_data(data, name=name, suffix=suffix, limits=limits)
    except images.MaybeIncomplete:
        return  # it decodes; a long dark tail is no reason to refuse a settled file


def _bad(source: str, shown: str, problem: str) -> Rejected:
    return Rejected(
        Reason.invalid_sidecar,
        f"{source}: reference image inbox/{shown} cannot be used: {problem}; replace it with a "
        "whole JPEG, PNG or WebP within the limits, or remove it from `images:`",
    )
