"""A share for real: the root is a FUSE view (bindfs) of a backing folder. Files written into
the backing folder raise no inotify event on the mount, as files another machine writes to an
SMB/NFS share raise none on this one; `observer: auto` polls there and still finds them.

Needs bindfs (`.ci/run` installs it) and a /dev/fuse this process may use; skipped otherwise.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import (
    ServiceProcess,
    drop_pair,
    files_under,
    has_status,
    read_json,
    wait_for,
    write_config,
)

from hotfolder.watch import Watcher, choose_observer, filesystem_type

pytestmark = pytest.mark.slow


def _unmount(mount: Path) -> None:
    for command in (["fusermount", "-u"], ["umount"], ["umount", "-l"]):
        if shutil.which(command[0]) is None:
            continue
        done = subprocess.run([*command, str(mount)], capture_output=True, timeout=30, check=False)
        if done.returncode == 0:
            return


@pytest.fixture
def share(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(backing, mount): `mount` is a bindfs view of `backing`; the whole root lives in it,
    so the service's renames between inbox/ and its other folders stay on one filesystem."""
    bindfs = shutil.which("bindfs")
    if bindfs is None:
        pytest.skip("bindfs is not installed (apt-get install bindfs; .ci/run installs it)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse: FUSE filesystems cannot be mounted here")
    backing = tmp_path / "backing"
    mount = tmp_path / "share"
    backing.mkdir()
    mount.mkdir()
    try:
        done = subprocess.run(
            [bindfs, str(backing), str(mount)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _unmount(mount)
        pytest.skip("bindfs did not finish mounting within 30 s")
    if done.returncode != 0 or not os.path.ismount(mount):
        why = done.stderr.strip() or f"exit status {done.returncode}"
        _unmount(mount)
        pytest.skip(f"cannot mount a FUSE filesystem here (needs /dev/fuse and root): {why}")
    try:
        yield backing, mount
    finally:
        _unmount(mount)
        assert not os.path.ismount(mount), f"{mount} is still mounted"


def test_inotify_on_the_mount_misses_writes_behind_it(share: tuple[Path, Path]) -> None:
    # The premise of observer: auto. Both observers watch the mount; a file written behind it
    # reaches only the polling one; a file written through it reaches the native one, which by
    # then (inotify keeps order) would have reported the first had it seen it.
    backing, mount = share
    assert (filesystem_type(mount) or "").startswith("fuse")
    assert choose_observer("auto", mount) == "polling"
    reports: dict[str, queue.Queue[str]] = {"native": queue.Queue(), "polling": queue.Queue()}
    watchers = [Watcher(mount, kind, reports[kind].put, 0.1) for kind in reports]
    for watcher in watchers:
        watcher.start()
    try:
        (backing / "behind.jpg").write_bytes(b"written behind the mount")

        def polling_saw(name: str) -> bool:
            while not reports["polling"].empty():
                if Path(reports["polling"].get()).name == name:
                    return True
            return False

        wait_for(lambda: polling_saw("behind.jpg"), timeout=15, what="the polling observer")
        (mount / "through.jpg").write_bytes(b"written through the mount")
        native_saw: list[str] = []

        def native_saw_through() -> bool:
            while not reports["native"].empty():
                native_saw.append(Path(reports["native"].get()).name)
            return "through.jpg" in native_saw

        wait_for(native_saw_through, timeout=15, what="the native observer")
        assert "behind.jpg" not in native_saw
    finally:
        for watcher in watchers:
            watcher.stop()


def test_auto_polls_on_the_share_and_a_pair_written_behind_it_completes(
    share: tuple[Path, Path],
) -> None:
    backing, mount = share
    write_config(mount, observer="auto", rescan_interval_seconds=3600)  # only the observer
    with ServiceProcess(mount) as service:
        service.wait_ready()
        queue_json = read_json(mount / "outbox" / "queue.json")
        assert queue_json is not None
        assert queue_json["observer"] == "polling"
        # Written by "another machine": into the backing folder, never through the mount.
        drop_pair(backing / "inbox", "station-7/IMG_0007")
        wait_for(
            lambda: has_status(mount, "station-7/IMG_0007", "completed"),
            timeout=60,
            what="the job written behind the mount to complete",
        )
        assert service.stop() == 0
    assert "with the polling observer" in service.log()
    assert files_under(backing / "inbox") == []
    assert files_under(backing / "archive") == [
        "station-7/IMG_0007.jpg",
        "station-7/IMG_0007.yaml",
    ]
    assert (backing / "outbox" / "station-7" / "IMG_0007.png").is_file()


def test_a_native_observer_on_the_share_is_rescued_by_the_rescan(
    share: tuple[Path, Path],
) -> None:
    # observer: native on a share is the mistake auto avoids: it sees nothing written behind
    # the mount. The periodic rescan still finds the pair, only later.
    backing, mount = share
    write_config(mount, observer="native", rescan_interval_seconds=1)
    with ServiceProcess(mount) as service:
        service.wait_ready()
        queue_json = read_json(mount / "outbox" / "queue.json")
        assert queue_json is not None
        assert queue_json["observer"] == "native"
        drop_pair(backing / "inbox", "missed-by-inotify")
        wait_for(lambda: has_status(mount, "missed-by-inotify", "completed"), timeout=60)
        assert service.stop() == 0
    assert files_under(backing / "inbox") == []
