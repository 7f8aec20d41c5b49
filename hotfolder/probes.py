"""Whether a settled image is whole and within the limits, decoded once per change of the file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from hotfolder import images, rawfiles
from hotfolder.config import Limits
from hotfolder.decoded import Decoded, identity
from hotfolder.errors import Reason, Rejected
from hotfolder.threads import DaemonPool

Problem = Rejected | images.IncompleteImage | None

# An image at least this big is decoded on a thread of its own while intake reads its
# sidecar; a smaller one decodes faster than a hand-over between threads.
BACKGROUND_BYTES = 64 * 1024
_decoders = DaemonPool(1, name="hotfolder-probe")


class ImageProbes:
    """Remembers each image's probe by (size, mtime), so a waiting image is not decoded every tick.

    An image that does not decode completely is taken to be still arriving; only once it has
    stayed incomplete for `incomplete_image_seconds` after settling is it `invalid_image`.
    """

    def __init__(
        self,
        limits: Limits,
        *,
        incomplete_image_seconds: float,
        lstat: Callable[[Path], os.stat_result] = os.lstat,
        decoded: Decoded | None = None,
        keep: Callable[[], bool] = lambda: False,
    ) -> None:
        self.limits = limits
        self.incomplete_image_seconds = incomplete_image_seconds
        self.lstat = lstat
        # While `keep()` (the queue is short: the job will be claimed at once), an image is
        # decoded as the editor needs it and kept in `decoded` for its worker (decoded.py).
        self.decoded = decoded
        self.keep = keep
        self._seen: dict[Path, tuple[int, int, Problem]] = {}

    def start(self, image: Path, *, settled_at: float, now: float) -> Callable[[], Problem]:
        """`check`, begun: an image of BACKGROUND_BYTES or more that is not known yet decodes
        on a thread of its own (the decoders release the GIL) while the caller does other
        work; call what this returns for the result (raises as `check`). Intake reads the
        sidecar meanwhile: a megapixel JPEG's decode and its sidecar's checks, 7 and 2 ms,
        one after the other were most of a drop's admission."""
        info = self.lstat(image)
        if self._known(image, info) is not None or info.st_size < BACKGROUND_BYTES:
            result = self._check(image, info, settled_at=settled_at, now=now)
            return lambda: result
        return _decoders.submit(lambda: self.check(image, settled_at=settled_at, now=now)).result

    def check(self, image: Path, *, settled_at: float, now: float) -> Problem:
        """None if the image is fit; why not (Rejected); or IncompleteImage while it may still come."""
        return self._check(image, self.lstat(image), settled_at=settled_at, now=now)

    def _known(self, image: Path, info: os.stat_result) -> tuple[int, int, Problem] | None:
        """The image's last probe, if the file is unchanged since (same size and mtime)."""
        cached = self._seen.get(image)
        if cached is not None and cached[:2] == (info.st_size, info.st_mtime_ns):
            return cached
        return None

    def _check(
        self, image: Path, info: os.stat_result, *, settled_at: float, now: float
    ) -> Problem:
        cached = self._known(image, info)
        if cached is not None:
            result = cached[2]
        else:
            result = None
            try:
                self._probe(image, info)
            except (Rejected, images.IncompleteImage) as e:
                result = e
            self._seen[image] = (info.st_size, info.st_mtime_ns, result)
        if isinstance(result, images.IncompleteImage) and (
            now >= settled_at + self.incomplete_image_seconds
        ):
            if isinstance(result, images.MaybeIncomplete):
                return None  # unchanged all this time: a whole image that ends in black rows
            return Rejected(
                Reason.invalid_image,
                f"{image.name} is truncated and did not complete within "
                f"{self.incomplete_image_seconds:g} s ({result})",
            )
        return result

    def _probe(self, image: Path, info: os.stat_result) -> None:
        """Check the image whole (raises as `images.probe`), keeping its pixels if asked."""
        if self.decoded is None or rawfiles.is_raw(image.suffix.lower()) or not self.keep():
            images.probe(image, limits=self.limits)
            return
        try:
            source = images.load_for_edit(image, limits=self.limits, whole=True)
        except (Rejected, images.IncompleteImage, OSError):
            raise
        except Exception:
            # Whatever the conversion for the editor trips on, the worker meets it as before.
            images.probe(image, limits=self.limits)
            return
        with contextlib.suppress(OSError):
            if identity(self.lstat(image)) == identity(info):  # not changed while it was read
                self.decoded.put(info, source)

    def forget(self, path: Path) -> None:
        self._seen.pop(path, None)
