"""The `_defaults.yaml` layers that apply to an image, each file read again only when it changes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotfolder import sidecar
from hotfolder.errors import Reason, Rejected

Layer = tuple[str, dict[str, Any]]


class FolderDefaults:
    """Finds and reads the `_defaults.yaml` (or `_defaults.yml`) files from inbox/ down.

    A file is parsed and checked once per (size, mtime); a bad one rejects every image
    below it, with the file named in the message.
    """

    def __init__(
        self,
        inbox: Path,
        *,
        max_bytes: int,
        lstat: Callable[[Path], os.stat_result] = os.lstat,
    ) -> None:
        self.inbox = inbox
        self.max_bytes = max_bytes
        self.lstat = lstat
        # path -> (size, mtime_ns, name relative to inbox/, parsed layer or why it is refused)
        self._cache: dict[Path, tuple[int, int, str, dict[str, Any] | Rejected]] = {}
        # folder -> the defaults files found in it, looked for once per tick (`new_tick`): a
        # burst of 1,000 images in one folder is two lstats, not 2,000.
        self._found: dict[Path, list[tuple[Path, os.stat_result]]] = {}

    def new_tick(self) -> None:
        """Look at the folders again: a defaults file may have come, changed or gone."""
        self._found.clear()

    def layers(self, image: Path) -> list[Layer] | Rejected:
        """The defaults files from inbox/ down to the image's folder, farthest first.

        Each layer is (its path relative to inbox/, its keys). An image outside inbox/ has none.
        """
        folder = image.parent
        chain = [folder, *folder.parents]
        if self.inbox not in chain:
            return []
        found: list[Layer] = []
        for directory in reversed(chain[: chain.index(self.inbox) + 1]):
            layer = self._layer_in(directory)
            if isinstance(layer, Rejected):
                return layer
            if layer is not None:
                found.append(layer)
        return found

    def forget(self, path: Path) -> None:
        """Drop what is known of one defaults file (it changed, came or went away)."""
        self._cache.pop(path, None)
        self._found.pop(path.parent, None)

    def _present(self, directory: Path) -> list[tuple[Path, os.stat_result]]:
        found = self._found.get(directory)
        if found is None:
            found = []
            for name in sidecar.DEFAULTS_NAMES:
                path = directory / name
                try:
                    found.append((path, self.lstat(path)))
                except FileNotFoundError:
                    continue
            self._found[directory] = found
        return found

    def _layer_in(self, directory: Path) -> Layer | Rejected | None:
        present = self._present(directory)
        if not present:
            return None
        if len(present) > 1:
            # As for NAME.yaml beside NAME.yml: no guessing which one the person is editing.
            names = " and ".join(self._relative(path) for path, _info in present)
            return Rejected(
                Reason.ambiguous,
                f"{names}: two defaults files in one folder; keep one of them",
            )
        path, info = present[0]
        cached = self._cache.get(path)
        if cached is None or cached[:2] != (info.st_size, info.st_mtime_ns):
            source = self._relative(path)
            cached = (info.st_size, info.st_mtime_ns, source, self._read(path, source))
            self._cache[path] = cached
        source, value = cached[2], cached[3]
        return value if isinstance(value, Rejected) else (source, value)

    def _read(self, path: Path, source: str) -> dict[str, Any] | Rejected:
        try:
            mapping = sidecar.read_layer(path, max_bytes=self.max_bytes, source=source)
            sidecar.check_layer(mapping, source=source)
        except Rejected as e:
            return e
        return mapping

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.inbox).as_posix()
