"""Images intake decoded whole, kept briefly for the worker that takes their job next.

Intake decodes every drop completely to know it is whole (SPEC: a drop counts once it
"decodes completely"). While the queue is short, that job is claimed at once and the worker
would decode the same file again; so intake then decodes it as the editor needs it and keeps
the result here (a few at most, for a short while), and the worker takes it instead. An
entry is found by the file's identity (device, inode, size, mtime in ns), which the rename
into pending/ keeps; a file changed since is another identity and is decoded again.

The page's 'before' thumbnail is made from the kept pixels at once, on a thread of its own,
while intake waits on the disk for the admission: made later, beside the edit and encode,
it took a core from them (issue 14: per-job overhead).
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from hotfolder import thumbs
from hotfolder.images import SourceImage
from hotfolder.threads import DaemonPool

Identity = tuple[int, int, int, int]

# At most this many decoded images are kept (a 2048 x 2048 one holds 12 MB)...
KEEP_IMAGES = 2
# ...for at most this long: a job not claimed by then is decoded by its worker as usual.
KEEP_SECONDS = 30.0


# Makes the kept images' 'before' thumbnails; whoever takes one waits for it or cancels it.
_thumbnails = DaemonPool(1, name="hotfolder-thumb-ahead")


def identity(info: os.stat_result) -> Identity:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)


@dataclass(frozen=True)
class Kept:
    """A decoded image, and its 'before' thumbnail being made."""

    source: SourceImage
    before: Future[bytes | None]


class Decoded:
    """Decoded images by file identity, each taken at most once (any thread)."""

    def __init__(
        self,
        *,
        keep_images: int = KEEP_IMAGES,
        keep_seconds: float = KEEP_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keep_images = keep_images
        self.keep_seconds = keep_seconds
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._kept: OrderedDict[Identity, tuple[float, Kept]] = OrderedDict()

    def put(self, info: os.stat_result, source: SourceImage) -> None:
        """Keep `source`, decoded from the file `info` describes (its lstat before reading),
        and begin its 'before' thumbnail."""
        before = _thumbnails.submit(lambda: thumbs.make(source.image, source.icc_profile))
        with self._lock:
            self._kept[identity(info)] = (self._monotonic(), Kept(source, before))
            while len(self._kept) > self.keep_images:
                _when, dropped = self._kept.popitem(last=False)[1]
                dropped.before.cancel()

    def take(self, path: Path) -> Kept | None:
        """What was kept for the file now at `path` if it is still that file, else None."""
        try:
            info = os.lstat(path)
        except OSError:
            return None
        with self._lock:
            kept = self._kept.pop(identity(info), None)
        if kept is None or self._monotonic() - kept[0] > self.keep_seconds:
            return None
        return kept[1]

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)
