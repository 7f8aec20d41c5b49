"""Watching inbox/: which observer for which filesystem, real observers, supervision, rescans."""

from __future__ import annotations

import logging
import queue
import time
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

from hotfolder.watch import Watcher, choose_observer, filesystem_type, is_network_fs

# A mountinfo as a container on a file server might see it: overlay root, a CIFS share with
# a local disk mounted inside it, an NFS export whose mount point has a space in its name.
MOUNTINFO = """\
22 1 0:21 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
23 22 0:22 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
24 22 0:23 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw,size=65536k
30 22 8:1 / /srv/local rw,relatime shared:1 - ext4 /dev/sda1 rw
31 22 8:2 / /srv/xfs rw,relatime - xfs /dev/sdb1 rw,attr2
40 22 0:40 / /srv/share rw,relatime shared:7 - cifs //nas/share rw,vers=3.1.1,cache=strict
41 40 8:3 / /srv/share/scratch rw,relatime - ext4 /dev/sdc1 rw
50 22 0:50 / /mnt/photo\\040desk rw,relatime - nfs4 nas:/export/photo rw,vers=4.2
51 22 0:51 / /mnt/back\\134slash rw,relatime - nfs nas:/export/b rw,vers=3
60 22 0:60 / /home/studio/inbox rw,nosuid,nodev - fuse.bindfs /data/inbox rw,user_id=0
61 22 0:61 / /mnt/smb rw,relatime - smb3 //nas/x rw
62 22 0:62 / /mnt/vm rw,relatime - 9p hostshare rw,trans=virtio
70 22 0:70 / /srv/over rw,relatime - ext4 /dev/sdd1 rw
71 22 0:71 / /srv/over rw,relatime - cifs //nas/over rw
"""


@pytest.fixture
def mountinfo(tmp_path: Path) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    return path


@pytest.mark.parametrize(
    ("path", "fstype"),
    [
        ("/", "overlay"),
        ("/var/lib/hotfolder/inbox", "overlay"),
        ("/tmp/hotfolder/inbox", "tmpfs"),
        ("/srv/local/inbox", "ext4"),
        ("/srv/xfs/inbox", "xfs"),
        ("/srv/share", "cifs"),
        ("/srv/share/inbox/station-3", "cifs"),
        ("/srv/share/scratch/inbox", "ext4"),  # a local disk mounted inside the share
        ("/srv/shared/inbox", "overlay"),  # a sibling whose name starts like the share's
        ("/mnt/photo desk/inbox", "nfs4"),  # \040 in mountinfo
        ("/mnt/back\\slash/inbox", "nfs"),  # \134 in mountinfo
        ("/home/studio/inbox", "fuse.bindfs"),
        ("/mnt/smb/inbox", "smb3"),
        ("/mnt/vm/inbox", "9p"),
        ("/srv/over/inbox", "cifs"),  # mounted over another mount: the last one is on top
    ],
)
def test_filesystem_type_finds_the_deepest_mount(mountinfo: Path, path: str, fstype: str) -> None:
    assert filesystem_type(Path(path), mountinfo) == fstype


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/srv/share/inbox", "polling"),  # cifs
        ("/mnt/smb/inbox", "polling"),  # smb3
        ("/mnt/photo desk/inbox", "polling"),  # nfs4
        ("/mnt/back\\slash/inbox", "polling"),  # nfs
        ("/mnt/vm/inbox", "polling"),  # 9p
        ("/home/studio/inbox", "polling"),  # fuse.bindfs
        ("/srv/local/inbox", "native"),  # ext4
        ("/srv/share/scratch/inbox", "native"),  # ext4 inside a share
        ("/srv/xfs/inbox", "native"),
        ("/tmp/inbox", "native"),  # tmpfs
        ("/var/lib/hotfolder/inbox", "native"),  # overlay
    ],
)
def test_auto_polls_on_network_and_fuse_filesystems(mountinfo: Path, path: str, kind: str) -> None:
    assert choose_observer("auto", Path(path), mountinfo) == kind


def test_native_and_polling_are_forced_whatever_the_filesystem(mountinfo: Path) -> None:
    assert choose_observer("native", Path("/srv/share/inbox"), mountinfo) == "native"
    assert choose_observer("polling", Path("/srv/local/inbox"), mountinfo) == "polling"


def test_without_mountinfo_auto_falls_back_to_native(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-mountinfo"
    assert filesystem_type(Path("/srv/share"), missing) is None
    assert choose_observer("auto", Path("/srv/share"), missing) == "native"


@pytest.mark.parametrize(
    "fstype", ["cifs", "smb3", "nfs", "nfs4", "9p", "fuse", "fuse.bindfs", "fuse.sshfs", "fuseblk"]
)
def test_network_and_fuse_types(fstype: str) -> None:
    assert is_network_fs(fstype)


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", None])
def test_local_types(fstype: str | None) -> None:
    assert not is_network_fs(fstype)


# --- real observers on real folders ---


class Seen:
    """Paths the watcher reported, waited on with a deadline."""

    def __init__(self) -> None:
        self.paths: queue.Queue[str] = queue.Queue()

    def note(self, path: str) -> None:
        self.paths.put(path)

    def wait_for(self, path: Path, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"the watcher did not report {path} within {timeout:g} s")
            try:
                if Path(self.paths.get(timeout=left)) == path:
                    return
            except queue.Empty:
                continue

    def drain(self) -> None:
        while True:
            try:
                self.paths.get_nowait()
            except queue.Empty:
                return


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    folder = tmp_path / "inbox"
    folder.mkdir()
    return folder


@pytest.fixture
def seen() -> Seen:
    return Seen()


def start_watcher(inbox: Path, mode: str, seen: Seen) -> Iterator[Watcher]:
    watcher = Watcher(inbox, mode, seen.note, poll_interval_seconds=0.1)
    watcher.start()
    try:
        yield watcher
    finally:
        watcher.stop()


@pytest.fixture(params=["native", "polling"])
def watcher(request: pytest.FixtureRequest, inbox: Path, seen: Seen) -> Iterator[Watcher]:
    yield from start_watcher(inbox, request.param, seen)


def test_a_real_observer_reports_a_dropped_file(watcher: Watcher, inbox: Path, seen: Seen) -> None:
    assert watcher.alive()
    (inbox / "station-3").mkdir()
    dropped = inbox / "station-3" / "IMG_0042.jpg"
    dropped.write_bytes(b"not really a jpeg")
    seen.wait_for(dropped)


def test_the_native_observer_is_not_told_of_files_read_only_of_files_changed(
    inbox: Path, seen: Seen
) -> None:
    """Intake reads every drop: the kernel sends no event for that (no IN_OPEN, no
    IN_CLOSE_NOWRITE in the watch's mask), only for what changes a file or a folder."""
    from watchdog.observers.inotify_c import InotifyConstants

    for watcher in start_watcher(inbox, "native", seen):
        observer = watcher.observer
        assert observer is not None
        masks = [emitter.get_event_mask_from_filter() for emitter in observer.emitters]  # type: ignore[attr-defined]
        assert masks and all(not mask & InotifyConstants.IN_OPEN for mask in masks)
        assert all(not mask & InotifyConstants.IN_CLOSE_NOWRITE for mask in masks)
        assert all(mask & InotifyConstants.IN_CLOSE_WRITE for mask in masks)  # writers.py
        dropped = inbox / "a.jpg"
        dropped.write_bytes(b"jpeg")
        seen.wait_for(dropped)
        seen.drain()
        time.sleep(0.3)
        seen.drain()
        for _ in range(50):
            dropped.read_bytes()
        time.sleep(0.5)
        assert seen.paths.empty()
        moved = inbox / "b.jpg"
        dropped.rename(moved)
        seen.wait_for(moved)


def test_a_dead_emitter_is_restarted_and_the_restart_counted(
    watcher: Watcher, inbox: Path, seen: Seen, caplog: pytest.LogCaptureFixture
) -> None:
    observer = watcher.observer
    assert observer is not None
    assert watcher.check() is False  # alive: nothing to do
    # Kill the thread that reads inotify / takes snapshots, as a dropped share or a watchdog
    # bug does, without telling anyone.
    for emitter in list(observer.emitters):
        emitter.stop()
        emitter.join(timeout=5)
    assert not watcher.alive()
    with caplog.at_level(logging.WARNING, logger="hotfolder.watch"):
        assert watcher.check() is True
    assert watcher.restarts == 1
    assert "restarted" in caplog.text
    assert watcher.alive()
    assert watcher.observer is not observer
    dropped = inbox / "after-restart.jpg"
    dropped.write_bytes(b"x")
    seen.wait_for(dropped)


def test_a_dead_observer_thread_is_restarted(watcher: Watcher, inbox: Path, seen: Seen) -> None:
    observer = watcher.observer
    assert observer is not None
    observer.stop()
    observer.join(timeout=5)
    assert watcher.check() is True
    assert watcher.check() is False
    assert watcher.restarts == 1
    dropped = inbox / "again.jpg"
    dropped.write_bytes(b"x")
    seen.wait_for(dropped)


def test_a_vanished_inbox_is_not_restarted_until_it_is_back(
    inbox: Path, seen: Seen, tmp_path: Path
) -> None:
    # The polling emitter stops itself when its folder is gone, as when a share drops.
    for watcher in start_watcher(inbox, "polling", seen):
        away = tmp_path / "away"
        inbox.rename(away)
        wait_for(lambda w=watcher: not w.alive(), timeout=15, what="the polling emitter to stop")
        assert watcher.check() is False
        assert watcher.restarts == 0
        away.rename(inbox)
        seen.drain()
        assert watcher.check() is True
        assert watcher.restarts == 1
        dropped = inbox / "back.jpg"
        dropped.write_bytes(b"x")
        seen.wait_for(dropped)


# --- end to end: the service as a subprocess ---


@pytest.mark.slow
def test_polling_service_picks_up_a_pair_and_says_so(tmp_path: Path) -> None:
    write_config(tmp_path, observer="polling")
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        queue_json = read_json(tmp_path / "outbox" / "queue.json")
        assert queue_json is not None
        assert queue_json["observer"] == "polling"
        drop_pair(tmp_path / "inbox", "station-1/IMG_0001")
        wait_for(lambda: has_status(tmp_path, "station-1/IMG_0001", "completed"), timeout=60)
        assert service.stop() == 0
    assert "with the polling observer" in service.log()
    assert files_under(tmp_path / "archive") == [
        "station-1/IMG_0001.jpg",
        "station-1/IMG_0001.yaml",
    ]


@pytest.mark.slow
def test_auto_on_a_local_disk_is_native(tmp_path: Path) -> None:
    write_config(tmp_path, observer="auto")
    kind = choose_observer("auto", tmp_path / "inbox")
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        queue_json = read_json(tmp_path / "outbox" / "queue.json")
        assert queue_json is not None
        assert queue_json["observer"] == kind
        assert service.stop() == 0
    if kind != "native":
        pytest.skip(f"the test folder is on {filesystem_type(tmp_path)}, not a local disk")


@pytest.mark.slow
def test_the_periodic_rescan_finds_what_the_observer_missed(tmp_path: Path) -> None:
    # A polling observer that looks once an hour sees nothing that arrives after it started:
    # as good as a dead or overflowed one. Only the rescan can find the pair.
    write_config(
        tmp_path,
        observer="polling",
        poll_interval_seconds=3600,
        rescan_interval_seconds=1,
    )
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        drop_pair(tmp_path / "inbox", "missed")
        wait_for(lambda: has_status(tmp_path, "missed", "completed"), timeout=60)
        assert service.stop() == 0
    assert files_under(tmp_path / "inbox") == []


@pytest.mark.slow
def test_the_heartbeat_keeps_time_with_a_long_poll_interval(tmp_path: Path) -> None:
    # An idle service with poll_interval_seconds: 60 still refreshes heartbeat_at in time.
    write_config(tmp_path, observer="polling", poll_interval_seconds=60)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        first = read_json(tmp_path / "outbox" / "queue.json")
        assert first is not None

        def beat() -> bool:
            now = read_json(tmp_path / "outbox" / "queue.json")
            return bool(now and now["heartbeat_at"] != first["heartbeat_at"])

        wait_for(beat, timeout=15, what="heartbeat_at to change within 15 s")
        assert service.stop() == 0
