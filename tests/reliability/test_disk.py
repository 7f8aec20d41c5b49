"""A full disk and read-only folders: nothing lost, nothing half-visible, work resumes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from support import (
    ServiceProcess,
    files_under,
    has_status,
    hotfolder,
    read_json,
    wait_for,
    write_config,
    write_sidecar,
)

pytestmark = pytest.mark.slow


def mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot mount ({' '.join(args)}): {result.stderr.strip()}")


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def as_root() -> Iterator[None]:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs or a read-only bind mount needs root (CI runs as root)")
    yield


def noise_png(path: Path, side: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(path)
    return path


def no_temporaries(root: Path) -> bool:
    return not list(root.rglob(".hf-*"))


def test_a_full_outbox_keeps_the_job_and_work_resumes(tmp_path: Path, as_root: None) -> None:
    """Pass: with outbox/ full, the job is neither lost nor shown half-written (no partial
    result, no temp file, every status parses); once space returns it completes."""
    write_config(tmp_path, settle_seconds=0.1, min_free_bytes=0)
    outbox = tmp_path / "outbox"
    mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(outbox))
    try:
        filler = outbox / "filler.bin"
        filler.write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))
        noise_png(tmp_path / "inbox" / "big.png", 400)  # about 480 KB as PNG
        write_sidecar(tmp_path / "inbox" / "big.yaml")
        with ServiceProcess(tmp_path) as service:
            wait_for(lambda: "cannot write" in service.log(), timeout=60, what="a write error")
            assert not (outbox / "big.png").exists()
            # Writers keep going (queue.json, the result's retry): a temporary file may exist
            # for a moment; what must not happen is one left behind by the failed write.
            wait_for(lambda: no_temporaries(tmp_path), timeout=30, what="no temporary file left")
            for path in outbox.rglob("*.json"):
                assert read_json(path) is not None
            held = files_under(tmp_path / "pending") + files_under(tmp_path / "processing")
            assert "big.png" in held
            filler.unlink()
            done = wait_for(lambda: has_status(tmp_path, "big", "completed"), timeout=90)
            assert service.stop() == 0
        assert (outbox / "big.png").exists()
        assert done["result_path"] == "outbox/big.png"
        assert no_temporaries(tmp_path)
    finally:
        umount(outbox)


def test_below_the_free_space_floor_nothing_is_admitted(tmp_path: Path, as_root: None) -> None:
    """Pass: with less free space than min_free_bytes, drops wait in inbox/ and queue.json
    says so; when space returns they are admitted and completed."""
    write_config(tmp_path, settle_seconds=0.1, min_free_bytes=500_000)
    outbox = tmp_path / "outbox"
    mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(outbox))
    try:
        filler = outbox / "filler.bin"
        filler.write_bytes(b"\0" * (700 * 1024))
        with ServiceProcess(tmp_path) as service:
            wait_for(lambda: (read_json(outbox / "queue.json") or {}).get("accepting") is False)
            noise_png(tmp_path / "inbox" / "wait.png", 32)
            write_sidecar(tmp_path / "inbox" / "wait.yaml")
            queue = wait_for(lambda: read_json(outbox / "queue.json"))
            assert "min_free_bytes" in queue["notes"]["disk"]
            assert (tmp_path / "inbox" / "wait.png").exists()
            filler.unlink()
            wait_for(lambda: has_status(tmp_path, "wait", "completed"), timeout=60)
            assert read_json(outbox / "queue.json")["accepting"] is True  # type: ignore[index]
            assert service.stop() == 0
    finally:
        umount(outbox)


@pytest.mark.parametrize("folder", ["archive", "failed"])
def test_a_read_only_folder_keeps_inputs_queued_until_it_is_writable(
    tmp_path: Path, as_root: None, folder: str
) -> None:
    """Pass: with archive/ (or failed/) a read-only mount, the job's inputs stay in the queue,
    the service says so and backs off; once the mount is gone the job ends where it should.

    (A move into a mount point fails with EXDEV even on a read-write bind mount, and with
    EROFS on a read-only one; either way the folder refuses the job's files.)"""
    write_config(tmp_path, settle_seconds=0.1)
    target = tmp_path / folder
    target.mkdir(exist_ok=True)
    mount("--bind", str(target), str(target))
    try:
        mount("-o", "remount,bind,ro", str(target))
        noise_png(tmp_path / "inbox" / "ro.png", 32)
        # A valid pair completes (needs archive/); a bad sidecar fails (needs failed/).
        if folder == "archive":
            write_sidecar(tmp_path / "inbox" / "ro.yaml")
        else:
            write_sidecar(tmp_path / "inbox" / "ro.yaml", preset="qwen-4step", steps=1, colour=1)
        with ServiceProcess(tmp_path) as service:
            refused = "cannot finish ro" if folder == "archive" else "error while handling"
            wait_for(lambda: refused in service.log(), timeout=60)
            held = files_under(tmp_path / "processing") + files_under(tmp_path / "inbox")
            assert "ro.png" in held
            if folder == "archive":
                # queue.json is rewritten by the publisher thread a moment after the log line.
                wait_for(
                    lambda: (
                        "cannot finish ro"
                        in (read_json(tmp_path / "outbox" / "queue.json") or {})
                        .get("notes", {})
                        .get("worker", "")
                    ),
                    what="queue.json to say why the job waits",
                )
            umount(target)
            final = "completed" if folder == "archive" else "failed"
            wait_for(lambda: has_status(tmp_path, "ro", final), timeout=90)
            assert service.stop() == 0
        assert (target / "ro.png").exists()
        assert files_under(tmp_path / "processing") == []
        assert files_under(tmp_path / "inbox") == []
    finally:
        umount(target)


def test_queue_folders_on_two_filesystems_are_refused_at_start(
    tmp_path: Path, as_root: None
) -> None:
    """Pass: with archive/ on another filesystem (renames would fail), `run` refuses to
    start with one line that names the folder, exit status 2."""
    write_config(tmp_path)
    archive = tmp_path / "archive"
    archive.mkdir()
    mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(archive))
    try:
        result = hotfolder("run", "--once", "--root", str(tmp_path))
    finally:
        umount(archive)
    assert result.returncode == 2
    assert "archive/" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
