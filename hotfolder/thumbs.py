"""Before/after thumbnails for the page (`outbox/.thumbs/NAME.before.jpg`, `.after.jpg`).

Made where the pixels already are, never on the device's path: the 'before' one on the
decoder's thread (dispatch's Prefetcher), with the decode ahead or while the slot edits; the
'after' one beside the encode (`render.finish`), carried back in the Outcome. Both are
written with the job's ending (`Spool.finish`). A thumbnail is a convenience: failing to
make or write one never fails a job.
"""

from __future__ import annotations

import io
import logging
import math
import os
import stat
from pathlib import Path

from PIL import Image

from hotfolder import fsops
from hotfolder.layout import Layout

log = logging.getLogger(__name__)

# The long side of a thumbnail, in pixels (the SPEC: at most 256).
THUMB_PIXELS = 256
THUMB_QUALITY = 80
KINDS = ("before", "after")


def make(image: Image.Image, icc_profile: bytes | None = None) -> bytes | None:
    """A JPEG of at most THUMB_PIXELS on its long side, with the image's ICC profile."""
    try:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        factor = math.ceil(max(rgb.size) / THUMB_PIXELS)
        if factor >= 4:
            # One box reduction by a whole factor, to between 3/4 of THUMB_PIXELS and all of
            # it on the long side: every pixel averaged, nothing aliased (1 megapixel: 0.7 ms;
            # a resize to exactly 256 px took 1.5, 0.9 of it in its last, small step).
            small = rgb.reduce(factor)
        elif factor > 1:  # at most 768 px: cheap to resize exactly
            scale = THUMB_PIXELS / max(rgb.size)
            size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
            small = rgb.resize(size, Image.Resampling.BICUBIC)
        else:
            # A copy, never the caller's own image: saving sets attributes on the image it
            # saves, and the caller's is being encoded at the same time on another thread
            # (the result beside its encode; an identity edit's result is its input).
            small = rgb.copy()
        out = io.BytesIO()
        extra = {"icc_profile": icc_profile} if icc_profile else {}
        small.save(out, "JPEG", quality=THUMB_QUALITY, **extra)
    except Exception:
        log.warning("could not make a thumbnail", exc_info=True)
        return None
    return out.getvalue()


def present(layout: Layout, name: str) -> tuple[bool, bool]:
    """Whether the before and the after thumbnail of a job exist. An empty one does not: a
    thumbnail is not fsynced (the page can do without it), so a power cut can leave one
    empty, and the page shows no picture rather than a broken one."""
    before, after = (_has_data(layout.thumb_path(name, which)) for which in KINDS)
    return before, after


def _has_data(path: Path) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size > 0


def remove(layout: Layout, name: str) -> None:
    """Remove a job's thumbnails (with its status file, at retention)."""
    for which in KINDS:
        path = layout.thumb_path(name, which)
        try:
            fsops.remove(path)
        except OSError as e:
            log.warning("cannot remove %s: %s", path, e)
            continue
        fsops.prune_empty_dirs(path.parent, layout.thumbs)
