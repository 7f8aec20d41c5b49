"""A camera's RAW file next to the JPEG or HEIF it shot with it (SPEC "Photographers' files").

Cameras set to RAW+JPEG write `IMG_7001.CR3` and `IMG_7001.JPG`: one picture, one drop. The
JPEG (or HEIF) is edited; the RAW is its *companion*: it travels with the job through
pending/ and processing/ to archive/ or failed/, and is never decoded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from hotfolder.layout import RAW_SUFFIXES
from hotfolder.names import split_name

# What a camera writes next to its RAW file: the picture that is edited.
EDITED_SUFFIXES: Final = (".jpg", ".jpeg", ".heic", ".heif")


def _suffix(path: Path) -> str:
    return split_name(path.name)[1].lower()


def split(images: list[Path]) -> tuple[list[Path], list[Path]]:
    """The images of one stem as (edited, companions): a RAW file and one JPEG or HEIF are the
    JPEG or HEIF with the RAW beside it; anything else is every image on its own."""
    raws = [p for p in images if _suffix(p) in RAW_SUFFIXES]
    shots = [p for p in images if _suffix(p) in EDITED_SUFFIXES]
    if len(raws) == 1 and len(shots) == 1 and len(images) == 2:
        return shots, raws
    return images, []
