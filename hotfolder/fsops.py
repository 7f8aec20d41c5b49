"""Every change hotfolder makes on disk goes through here: atomic writes, renames, removals.

Writes go to a temporary name in the same folder, are flushed and fsynced, then
renamed over the final name, and the folder is fsynced, so a reader never sees
half a file and a crash leaves either the old file or the new one. Moves are
renames on one filesystem. Because every mutation passes through this module,
the fault-injection tests hook one place (`HOTFOLDER_CRASH_AFTER_OPS`).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pydantic_core

from hotfolder.errors import HotfolderError
from hotfolder.threads import DaemonPool

T = TypeVar("T")

log = logging.getLogger(__name__)

TEMP_PREFIX = ".hf-"
TEMP_SUFFIX = ".tmp"
# Most filesystems limit one name to 255 bytes; a temporary name must fit as the final one does.
NAME_MAX_BYTES = 255
# The board writes status files in batches of at most this many.
WRITE_BATCH_FILES = 64
# fsyncs issued together from this many threads: the filesystem's journal commits them as one
# (ext4 on this project's disk: 3.2 ms per file one after another, 0.06-0.2 ms together).
FSYNC_THREADS = 8


class NotARegularFile(HotfolderError):
    """A path that should be a plain file is a link, folder, FIFO, socket or device."""


class FileTooBig(HotfolderError):
    """A file is larger than the caller allows."""

    def __init__(self, path: Path, size: int, max_bytes: int) -> None:
        super().__init__(f"{path.name} is {size} bytes, more than the limit of {max_bytes}")
        self.size = size
        self.max_bytes = max_bytes


# --- fault injection: crash the process after the N-th mutation (tests/reliability) ---
_ops_done = 0
_crash_after = int(os.environ.get("HOTFOLDER_CRASH_AFTER_OPS", "0") or 0)


def _mutation(kind: str, path: Path) -> None:
    global _ops_done
    _ops_done += 1
    if _crash_after and _ops_done > _crash_after:
        os._exit(137)


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some network filesystems refuse fsync on folders; the rename is still atomic.
        pass
    finally:
        os.close(fd)


def fsync_dirs(folders: Iterable[Path]) -> None:
    """fsync each folder once, however many files of a batch it received or lost."""
    for folder in dict.fromkeys(folders):
        fsync_dir(folder)


def fsync_all(fds: Sequence[int]) -> None:
    """fsync every file at once (see `in_parallel`), so the journal commits them together."""
    in_parallel(os.fsync, fds)


def in_parallel(work: Callable[[T], object], items: Sequence[T]) -> None:
    """`work(item)` for every item: the first on this thread, the others on a shared pool of up
    to FSYNC_THREADS threads, all done before this returns (the first error is raised). For
    calls that wait on the filesystem's journal (fsync, creating a file): issued together,
    they share its commits instead of queueing. The caller always does a share itself, so
    callers on many threads at once never wait on each other for the pool."""
    if len(items) <= 1:
        for item in items:
            work(item)
        return
    futures = [_workers.submit(functools.partial(work, item)) for item in items[1:]]
    errors: list[BaseException] = []
    try:
        work(items[0])
    except BaseException as e:
        errors.append(e)
    for future in futures:
        try:
            future.result()
        except BaseException as e:
            errors.append(e)
    if errors:
        raise errors[0]


# The caller of `in_parallel` does one more share itself.
_workers = DaemonPool(FSYNC_THREADS - 1, name="hotfolder-fsync")


def ensure_dir(folder: Path) -> None:
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)


def is_temp_name(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def write_atomic(path: Path, data: bytes) -> None:
    """Make `path` hold exactly `data`, appearing complete or not at all."""
    write_many([(path, data)])


def write_many(files: Sequence[tuple[Path, bytes]]) -> None:
    """Write each `(path, data)` as `write_atomic` does, with the durability shared.

    Each file still goes to a temporary name, is fsynced and renamed over its path; the
    fsyncs of a batch are issued together and each folder is fsynced once, after all of its
    renames. A failure leaves every file either whole or untouched and raises.
    """
    stage(files).commit()


class Staged:
    """Files written and fsynced under temporary names, waiting to be renamed into place."""

    def __init__(self) -> None:
        self._temps: list[tuple[Path, Path]] = []  # (temporary, final path), in order

    def add(self, temp: Path, path: Path) -> None:
        self._temps.append((temp, path))

    def commit(self, keep: Callable[[int], bool] = lambda index: True) -> None:
        """Rename each file (by its index in the batch) that `keep` keeps over its path and
        remove the others; then fsync each folder once."""
        temps, self._temps = self._temps, []
        renamed: list[Path] = []
        try:
            for index, (temp, path) in enumerate(temps):
                if keep(index):
                    _mutation("replace", path)
                    os.replace(temp, path)
                    renamed.append(path)
                else:
                    temp.unlink()
        except BaseException:
            self._temps = temps
            self.discard()
            raise
        finally:
            # After a failure too: the files renamed before it are whole, and should stay.
            fsync_dirs(path.parent for path in renamed)

    def discard(self) -> None:
        """Remove the temporary files not renamed yet."""
        for temp, _path in self._temps:
            with contextlib.suppress(OSError):
                temp.unlink()
        self._temps = []


def stage(files: Sequence[tuple[Path, bytes]]) -> Staged:
    """Write each `(path, data)` to a temporary name beside it and fsync it, all of them at
    once (`in_parallel`: creating a file waits on the journal too); nothing is renamed yet."""
    staged = Staged()
    temps = _stage(list(enumerate(files)), optional=())
    for index in range(len(files)):
        staged.add(*temps[index])
    return staged


def _stage(
    files: Sequence[tuple[int, tuple[Path, bytes]]],
    *,
    optional: Collection[int],
    unsynced: Collection[int] = (),
) -> dict[int, tuple[Path, Path]]:
    """Each file (by its index) under a temporary name beside it, fsynced unless `unsynced`
    (`stage`): its (temporary, final path). An `optional` one that cannot be written is
    logged and left out; any other raises, with nothing left behind."""
    work: list[tuple[int, Path, Path, bytes]] = []
    for index, (path, data) in files:
        # A missing folder is made by `_write_temp` (one stat less per file when it exists).
        _mutation("write", path)
        work.append((index, path.with_name(temp_name(path.name)), path, data))
    temps: dict[int, tuple[Path, Path]] = {}

    def write(item: tuple[int, Path, Path, bytes]) -> None:
        index, temp, path, data = item
        try:
            _write_temp((temp, path, data), sync=index not in unsynced)
        except OSError as e:
            with contextlib.suppress(OSError):
                temp.unlink()  # created, maybe partly written (a full disk)
            if index not in optional:
                raise
            log.warning("cannot write %s: %s; going on without it", path, e)
            return
        temps[index] = (temp, path)

    try:
        in_parallel(write, work)
    except BaseException:
        for temp, _path in temps.values():
            with contextlib.suppress(OSError):
                temp.unlink()
        raise
    return temps


class Steps:
    """Changes made in the order they are added, with their durability shared.

    A job's claim or ending used to be a dozen durable steps one after another, each waiting
    for the disk (issue 14: per-job overhead). Here the files to write go to temporary names
    first, all fsynced together (`stage`); then every step runs in order: a file renamed into
    place (`write`), a file moved, never over another (`move`), a file removed (`remove`), or
    a call at its place in the order (`call`: the caller's bookkeeping); then every folder
    that gained or lost a file is fsynced once, all together.

    A crash anywhere leaves a prefix of the steps done, as if each had been taken alone:
    renames are atomic, and what a killed process did is what the kernel has. Every file
    that appears is whole (fsynced before its rename). A step that fails stops the rest and
    raises; the temporary files not renamed are removed, and the folders of the steps done
    are still fsynced.

    `durable=False`: the folders are not fsynced, for steps whose loss in a power cut is
    harmless (a claim: its job is queued again, as if never taken), or whose caller fsyncs
    `folders` itself, later (once it has let go of a lock).
    """

    def __init__(self, *, durable: bool = True) -> None:
        self.durable = durable
        self._files: list[tuple[Path, bytes]] = []
        self._optional: set[int] = set()
        self._unsynced: set[int] = set()
        self._steps: list[tuple[str, Any]] = []
        self._staged: dict[int, tuple[Path, Path]] = {}
        self._first = 0  # the index of the first file not staged yet
        self.folders: list[Path] = []  # those the last `commit` changed, each once
        self.left_out: set[int] = set()  # optional files (by index) not put in place

    def write(
        self, path: Path, data: bytes, *, optional: bool = False, durable: bool = True
    ) -> int:
        """`optional`: a file the rest does not depend on (a thumbnail): if it cannot be
        written, that is logged and the other steps go on. `durable=False`: neither the file
        nor its folder is fsynced (it still appears whole or not at all while the machine
        runs): a file the service can do without after a power cut (the page's thumbnails)."""
        if optional:
            self._optional.add(len(self._files))
        if not durable:
            self._unsynced.add(len(self._files))
        self._steps.append(("write", len(self._files)))
        self._files.append((path, data))
        return len(self._files) - 1  # its index, for `left_out`

    def move(self, src: Path, dst: Path, *, if_present: bool = False) -> None:
        """`if_present`: a source that is gone is skipped (a drop deleted after it was read)."""
        self._steps.append(("move", (src, dst, if_present)))

    def remove(self, path: Path) -> None:
        self._steps.append(("remove", path))

    def call(self, step: Callable[[], object]) -> None:
        self._steps.append(("call", step))

    def stage(self) -> None:
        """Write and fsync the files added so far now (before taking a lock, say); `commit`
        then only puts them in place. Raises as `commit`, with nothing left behind."""
        self._staged = self._stage()

    def commit(self) -> None:
        steps, self._steps = self._steps, []
        temps, self._staged = {**self._staged, **self._stage()}, {}
        changed: list[Path] = []
        try:
            for kind, arg in steps:
                if kind == "write":
                    changed += self._replace(temps, arg)
                elif kind == "move":
                    changed.extend(_move_step(*arg))
                elif kind == "remove":
                    _mutation("remove", arg)
                    with contextlib.suppress(FileNotFoundError):
                        arg.unlink()
                        changed.append(arg.parent)
                else:
                    arg()
        finally:
            for temp, _path in temps.values():
                with contextlib.suppress(OSError):
                    temp.unlink()
            self.folders = list(dict.fromkeys(changed))
            if self.durable:
                in_parallel(fsync_dir, self.folders)

    def _stage(self) -> dict[int, tuple[Path, Path]]:
        """The files added since the last staging, under temporary names (`_stage`)."""
        first, self._first = self._first, len(self._files)
        files = list(enumerate(self._files))[first:]
        return _stage(files, optional=self._optional, unsynced=self._unsynced)

    def _replace(self, temps: dict[int, tuple[Path, Path]], index: int) -> list[Path]:
        """Put a staged file in place (popped from `temps`); the folder it changed."""
        if index not in temps:
            self.left_out.add(index)
            return []  # an optional file that could not be written
        temp, path = temps[index]
        _mutation("replace", path)
        try:
            os.replace(temp, path)
        except OSError as e:
            if index not in self._optional:
                raise
            log.warning("cannot write %s: %s; going on without it", path, e)
            self.left_out.add(index)
            return []
        del temps[index]
        return [] if index in self._unsynced else [path.parent]


def _move_step(src: Path, dst: Path, if_present: bool) -> tuple[Path, ...]:
    try:
        return _rename_new(src, dst)
    except FileNotFoundError:
        if if_present and not os.path.lexists(src):
            return ()
        raise


def _rename_new(src: Path, dst: Path) -> tuple[Path, Path]:
    """Rename `src` to `dst`, never over an existing file (a link included); the two folders it
    changed. One lstat and the rename: the target's folder is made only when the rename says
    it is missing (a burst moves thousands of files, and each stat is a wait on the GIL)."""
    try:
        os.lstat(dst)
    except FileNotFoundError:
        pass
    else:
        raise FileExistsError(errno.EEXIST, "refusing to overwrite", str(dst))
    _mutation("move", dst)
    try:
        os.rename(src, dst)
    except FileNotFoundError:
        if not os.path.lexists(src):
            raise
        ensure_dir(dst.parent)
        os.rename(src, dst)
    return dst.parent, src.parent


_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW


def _write_temp(item: tuple[Path, Path, bytes], *, sync: bool = True) -> None:
    temp, path, data = item
    try:
        fd = os.open(temp, _CREATE_NEW, 0o644)
    except FileNotFoundError:
        # Its folder is not there yet, or was pruned as it emptied (a batch staged without the
        # spool's lock): make it.
        ensure_dir(path.parent)
        fd = os.open(temp, _CREATE_NEW, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def temp_name(name: str) -> str:
    """A fresh temporary name beside `name`, never longer than the filesystem allows.

    The writer's pid in the name tells a crashed writer's leftovers from a live one's. A
    long name (a 240-character drop's manifest) is replaced by a digest of itself, so the
    temporary file fits wherever the final one fits (issue 14: ENAMETOOLONG for ever).
    """
    tail = f".{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    if len(os.fsencode(TEMP_PREFIX + name + tail)) > NAME_MAX_BYTES:
        name = hashlib.sha256(os.fsencode(name)).hexdigest()[:32]
    return f"{TEMP_PREFIX}{name}{tail}"


def write_json_atomic(path: Path, payload: Any) -> None:
    write_atomic(path, json_bytes(payload))


def json_bytes(payload: Any) -> bytes:
    """What `write_json_atomic` writes for `payload`: JSON indented by two spaces, UTF-8, a
    newline at the end. pydantic-core's encoder, not `json.dumps`: with an indent, the
    standard library falls back to its pure-Python encoder, nine times slower, and a burst
    writes thousands of status files (benchmarks/README.md, issue 14)."""
    return pydantic_core.to_json(payload, indent=2) + b"\n"


def move(src: Path, dst: Path) -> None:
    """Rename `src` to `dst` (same filesystem), never over an existing file."""
    move_many([(src, dst)])


def move_many(moves: Sequence[tuple[Path, Path]]) -> None:
    """Rename each `(src, dst)` in order, never over an existing file, then fsync every folder
    that gained or lost a file once (targets first). A refused move raises after the folders
    of the moves before it are fsynced."""
    done: list[tuple[Path, Path]] = []
    try:
        for src, dst in moves:
            _rename_new(src, dst)
            done.append((src, dst))
    finally:
        fsync_dirs([dst.parent for _src, dst in done] + [src.parent for src, _dst in done])


def remove(path: Path) -> None:
    """Remove a file if it is there."""
    _mutation("remove", path)
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def prune_empty_dirs(folder: Path, stop: Path) -> None:
    """Remove `folder` and its parents while empty, up to (not including) `stop`."""
    folder = folder.resolve()
    stop = stop.resolve()
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def read_regular(path: Path, max_bytes: int) -> bytes:
    """Read a plain file without following links or blocking on FIFOs; refuse files over `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):
            raise NotARegularFile(f"{path.name} is a symbolic link; drop the file itself") from e
        if e.errno == errno.ENXIO:
            raise NotARegularFile(f"{path.name} is a socket; drop a plain file") from e
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFile(f"{path.name} is not a plain file; drop a plain file")
        if info.st_size > max_bytes:
            raise FileTooBig(path, info.st_size, max_bytes)
        chunks = []
        remaining = max_bytes + 1
        # The size it has now in one read (one buffer: a 48 MB RAW is not held twice while
        # 1 MB pieces are joined), then whatever it grew by since, in pieces.
        want = info.st_size + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, want))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
            if len(chunk) == info.st_size < want:
                break  # all of it, as fstat saw it a moment ago: no read more to find its end
            want = 1 << 20
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise FileTooBig(path, len(data), max_bytes)
        return data
    finally:
        os.close(fd)


def temp_writer_pid(name: str) -> int | None:
    """The pid of the process that wrote a temporary file, from its name."""
    if not is_temp_name(name):
        return None
    parts = name[: -len(TEMP_SUFFIX)].split(".")
    if len(parts) < 3 or not parts[-2].isdigit():
        return None
    return int(parts[-2])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: Path, older_than_seconds: float, now: float | None = None) -> int:
    """Remove our temporary files left by a crash: their writer is gone, or they are old.

    A temp file whose writer is still alive and that is younger than the threshold
    is in use (another hotfolder command writing it) and is never touched.
    """
    now = time.time() if now is None else now
    removed = 0
    if not folder.is_dir():
        return 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            if not is_temp_name(name):
                continue
            path = Path(dirpath) / name
            pid = temp_writer_pid(name)
            try:
                old = now - path.lstat().st_mtime > older_than_seconds
            except OSError:
                continue
            if old or (pid is not None and pid != os.getpid() and not _alive(pid)):
                remove(path)
                removed += 1
    return removed
