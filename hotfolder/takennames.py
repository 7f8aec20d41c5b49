"""Which names jobs own files under, known without ~180 `lstat` calls per new name (issue 14).

`Layout.name_taken` asks the disk for every ending a job's files can have in each service
folder. Intake asks it for every drop it names, and a burst of 1,000 drops spent half of
intake's time there. `TakenNames` answers the same question from memory for names that no
job can own, and asks the disk as before for the others.

Why a name it has not seen is free: only the service writes the service folders while it
runs (SPEC "Folders"; the root lock keeps other hotfolder commands out, and they send their
requests to the service), and every name it writes files under is one of these:

- a name handed out by intake (`note`: every name `carried` returns, before any file of it
  is written);
- a job's name already on disk when a folder was listed (the first time a name in that
  folder was asked about: one listing of each service folder there);
- a job in the queue (pending/, processing/, or admitted and not written yet) when that
  listing was made. They are read first, so a job that moves from one folder to another
  while the folders are listed one after another is known all the same; and a job retried
  from failed/ later was in failed/ when it was listed.

The memory is a superset: a name counts as seen when any file in a listed folder starts
with `NAME.`, compared folded (see `_key`) so that a case-insensitive share's `img_1.JPG`
counts for `IMG_1`. A name seen is asked of the disk exactly as before, so the answers
never differ from `Layout.name_taken`'s; names whose files have gone since (the retention
sweep, the operator) are free again as before.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable, Iterable

from hotfolder.layout import Layout


def _key(name: str) -> str:
    """A name as loosely as any filesystem could compare it: compatibility-decomposed, case
    folded, only its ASCII characters kept (so accents, and letters that differ only in a
    case or form some share ignores, never tell two names apart). Two names a filesystem
    takes for one always share a key; names that merely share one are checked on disk."""
    folded = unicodedata.normalize("NFKD", name.replace("\u0131", "i")).casefold()
    return "".join(char for char in folded if char.isascii())


def _stems(entry: str) -> Iterable[str]:
    """Every name a file called `entry` could belong to: what precedes each of its dots."""
    start = entry.find(".", 1)
    while start != -1:
        yield entry[:start]
        start = entry.find(".", start + 1)


class TakenNames:
    """Intake's names, on its one thread."""

    def __init__(self, layout: Layout, live: Callable[[], Iterable[str]]) -> None:
        self.layout = layout
        self.live = live  # the names of the jobs in the queue, read under the spool's lock
        self._keys: set[str] = set()
        self._listed: set[str] = set()  # folders (as in a job's name; "" for the top) listed

    def taken(self, name: str) -> bool:
        """Whether a job owns files named `name`: `Layout.name_taken`'s answer, which is
        asked only for names that may be taken."""
        folder = name.rpartition("/")[0]
        if folder not in self._listed and not self._list(folder):
            return self.layout.name_taken(name)
        return _key(name) in self._keys and self.layout.name_taken(name)

    def carried(self, name: str, reserved: set[str]) -> tuple[str, bool]:
        """`Layout.carried_name`, with the name it returns noted as handed out."""
        chosen, carried = self.layout.carried_name(name, reserved, taken=self.taken)
        self.note(chosen)
        return chosen, carried

    def note(self, name: str) -> None:
        """`name` is handed out: its files may appear in the service folders from now on."""
        self._keys.add(_key(name))

    def _list(self, folder: str) -> bool:
        """Learn the names in `folder` of every service folder; False if one cannot be read."""
        keys = {_key(name) for name in self.live()}
        prefix = f"{folder}/" if folder else ""
        for top in self.layout.taken_folders():
            try:
                entries = os.listdir(os.path.join(top, folder))
            except FileNotFoundError:
                continue  # its files would make it (and are named here first)
            except OSError:
                return False  # not a folder, unreadable: ask the disk for every name in it
            for entry in entries:
                keys.update(_key(prefix + stem) for stem in _stems(entry))
        self._keys |= keys
        self._listed.add(folder)
        return True
