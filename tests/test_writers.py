"""A file still open for writing is not settled (issue 14): inotify's modify without a
close-write, and local writers' file descriptors in /proc; never longer than
writer_wait_seconds."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import ServiceProcess, has_status, wait_for, write_config, write_sidecar
from test_intake import Rig

from hotfolder.settle import StabilityTracker
from hotfolder.watch import Watcher
from hotfolder.writers import Writers, open_for_writing


def picture(fmt: str, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.fromarray((rng.random((192, 256, 3)) * 255).astype("uint8"))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def key(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino


def test_proc_shows_a_local_writer_and_not_a_reader(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "read.jpg").write_bytes(b"x")
    outside = tmp_path / "elsewhere.jpg"
    with (
        (inbox / "write.jpg").open("wb") as _w,
        (inbox / "both.jpg").open("w+b") as _b,
        (inbox / "read.jpg").open("rb") as _r,
        outside.open("wb") as _o,
    ):
        found = open_for_writing(inbox)
        assert found[key(inbox / "write.jpg")] == f"pid {os.getpid()} ({_comm()})"
        assert key(inbox / "both.jpg") in found
        assert key(inbox / "read.jpg") not in found
        assert key(outside) not in found
    assert open_for_writing(inbox) == {}


def _comm() -> str:
    return Path("/proc/self/comm").read_text().strip()


def test_a_file_written_and_not_closed_is_held_until_closed_or_the_wait(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"x")
    info = os.stat(path)
    writers = Writers(tmp_path, wait_seconds=600)
    assert writers.holding(path, info, 0.0) is None
    writers.event("modified", os.fspath(path))
    assert writers.holding(path, info, 10.0) is not None
    assert writers.holding(path, info, 600.0) is None  # stood still long enough: taken
    writers.event("closed", os.fspath(path))
    assert writers.holding(path, info, 0.0) is None
    writers.event("modified", os.fspath(path))
    writers.event("deleted", os.fspath(path))
    assert writers.holding(path, info, 0.0) is None


def test_the_settle_clock_starts_again_when_the_writer_lets_go() -> None:
    tracker = StabilityTracker(settle_seconds=2)
    path = Path("inbox/a.jpg")
    writer: list[str] = ["smbd"]
    asked: list[float] = []

    def held(unchanged: float) -> str | None:
        asked.append(unchanged)
        return writer[0] if writer else None

    assert not tracker.observe(path, 10, 1, now=0, held=held)
    assert not tracker.observe(path, 10, 1, now=5, held=held)  # still, but still open
    writer.clear()
    assert not tracker.observe(path, 10, 1, now=6, held=held)  # let go at 5: settles at 7
    assert tracker.observe(path, 10, 1, now=7, held=held)
    assert tracker.observe(path, 10, 1, now=8, held=held)
    assert asked == [5, 7]  # asked as it was about to settle, for how long it stood still


def test_intake_does_not_take_a_file_this_process_still_writes(tmp_path: Path) -> None:
    rig = Rig(tmp_path, writer_wait_seconds=100, incomplete_image_seconds=0)
    data = picture("BMP")
    write_sidecar(rig.inbox / "slow.yaml")
    with (rig.inbox / "slow.bmp").open("wb") as handle:
        handle.truncate(len(data))  # preallocated, half written: no end marker to miss
        handle.write(data[: len(data) // 2])
        handle.flush()
        rig.tick()
        rig.tick(2.5)
        rig.tick(10)
        assert rig.queued() == []
        handle.write(data[len(data) // 2 :])
    rig.intake.note(rig.inbox / "slow.bmp")
    rig.tick(1)  # the size and mtime changed: settles settle_seconds from now
    assert rig.queued() == []
    rig.tick(2.5)
    assert rig.queued() == ["slow"]
    assert (rig.layout.pending / "slow.bmp").read_bytes() == data


def test_a_writer_idle_past_the_wait_does_not_strand_the_file(tmp_path: Path) -> None:
    rig = Rig(tmp_path, writer_wait_seconds=30)
    write_sidecar(rig.inbox / "idle.yaml")
    data = picture("PNG")
    with (rig.inbox / "idle.png").open("wb") as handle:
        handle.write(data)
        handle.flush()
        rig.tick()
        rig.tick(2.5)
        rig.tick(20)
        assert rig.queued() == []
        rig.tick(11)  # unchanged for 33.5 s, open all along
        assert rig.queued() == ["idle"]


def test_the_native_observer_tells_writers_what_is_written_and_closed(tmp_path: Path) -> None:
    writers = Writers(tmp_path, wait_seconds=600, scan=lambda _inbox: {})  # inotify alone
    watcher = Watcher(tmp_path, "native", lambda _path: None, written=writers.event)
    watcher.start()
    try:
        path = tmp_path / "a.jpg"
        with path.open("wb") as handle:
            handle.write(b"half")
            handle.flush()
            wait_for(lambda: writers.holding(path, os.stat(path), 0.0), what="modified seen")
        wait_for(lambda: writers.holding(path, os.stat(path), 0.0) is None, what="close seen")
    finally:
        watcher.stop()


def _copy_with_a_stall(path: Path, data: bytes, stall_seconds: float) -> None:
    """The issue's reproduction: the final size first, half, a stall with the file open, the rest."""
    with path.open("wb") as handle:
        handle.truncate(len(data))
        handle.write(data[: len(data) // 2])
        handle.flush()
        time.sleep(stall_seconds)  # the copier stalls; nothing to poll for
        handle.write(data[len(data) // 2 :])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "observer"),
    [("JPEG", "native"), ("TIFF", "native"), ("BMP", "native"), ("BMP", "polling")],
)
def test_the_service_takes_the_whole_copy_not_the_stalled_half(
    tmp_path: Path, fmt: str, observer: str
) -> None:
    # incomplete_image_seconds: 0 takes a maybe-whole TIFF or BMP (zero tail) as soon as it
    # settles and rejects a short JPEG at once: only the writer check can make them wait.
    write_config(tmp_path, settle_seconds=0.5, incomplete_image_seconds=0, observer=observer)
    data = picture(fmt)
    suffix = {"JPEG": "jpg", "TIFF": "tif", "BMP": "bmp"}[fmt]
    write_sidecar(tmp_path / "inbox" / "copy.yaml")
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        _copy_with_a_stall(tmp_path / "inbox" / f"copy.{suffix}", data, stall_seconds=3)
        done = wait_for(lambda: has_status(tmp_path, "copy", "completed", "failed"))
        assert service.stop() == 0
    assert done["status"] == "completed", done
    assert (tmp_path / "archive" / f"copy.{suffix}").read_bytes() == data
    original = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)
    result = np.asarray(Image.open(tmp_path / "outbox" / "copy.png").convert("RGB"), dtype=np.int16)
    assert np.abs(result - original).mean() < 8  # the whole picture, not a zero or grey half


@pytest.mark.slow
def test_the_service_takes_a_file_left_open_past_writer_wait_seconds(tmp_path: Path) -> None:
    write_config(tmp_path, settle_seconds=0.2, writer_wait_seconds=2)
    data = picture("PNG")
    write_sidecar(tmp_path / "inbox" / "idle.yaml")
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        with (tmp_path / "inbox" / "idle.png").open("wb") as handle:
            handle.write(data)
            handle.flush()
            done = wait_for(lambda: has_status(tmp_path, "idle", "completed", "failed"))
        assert service.stop() == 0
    assert done["status"] == "completed", done
    assert "writer_wait_seconds" in service.log_path.read_text()
