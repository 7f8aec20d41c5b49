"""End to end: `hotfolder run` as a subprocess on real folders, checked against the SPEC."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from support import (
    ServiceProcess,
    drop_pair,
    files_under,
    has_status,
    hotfolder,
    make_image,
    read_json,
    status_of,
    wait_for,
    write_config,
    write_sidecar,
)

pytestmark = pytest.mark.slow

STATUS_FIELDS = {
    "schema",
    "job_id",
    "name",
    "status",
    "position",
    "estimated_wait_seconds",
    "progress",
    "created_at",
    "started_at",
    "completed_at",
    "source",
    "instruction",
    "model",
    "result_path",
    "result_seed",
    "error_code",
    "error",
    "attempts",
}
QUEUE_FIELDS = {
    "queue_size",
    "max_queue_size",
    "queued_count",
    "processing_count",
    "completed_count",
    "failed_count",
    "cancelled_count",
    "current_job_id",
    "total_jobs",
    "paused",
    "updated_at",
    "heartbeat_at",
    "observer",
    "jobs",
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_config(tmp_path)
    return tmp_path


def test_pair_sidecar_first_completes_with_every_promised_file(root: Path) -> None:
    inbox = root / "inbox"
    with ServiceProcess(root) as service:
        service.wait_ready()
        drop_pair(inbox, "IMG_0042", image_first=False, seed=7)
        done = wait_for(lambda: has_status(root, "IMG_0042", "completed", "failed"), what="done")
        assert service.stop() == 0, service.log()
    assert done["status"] == "completed", done
    assert set(done) >= STATUS_FIELDS
    assert done["schema"] == 1
    assert done["name"] == "IMG_0042"
    assert done["source"] == "inbox/IMG_0042.jpg"
    assert done["result_path"] == "outbox/IMG_0042.png"
    assert done["result_seed"] == 7
    assert done["instruction"] == "Make the sky blue"
    assert done["model"] == "qwen-4step"
    assert done["position"] is None
    assert done["attempts"] == 1
    assert done["error_code"] is None
    for stamp in ("created_at", "started_at", "completed_at"):
        assert done[stamp].endswith("Z"), done[stamp]
    result = root / done["result_path"]
    with Image.open(result) as im:
        assert im.format == "PNG"
        assert im.size == (64, 48)
    assert files_under(root / "archive") == ["IMG_0042.jpg", "IMG_0042.yaml"]
    assert files_under(inbox) == []
    assert files_under(root / "pending") == []
    assert files_under(root / "processing") == []
    queue = read_json(root / "outbox" / "queue.json")
    assert queue is not None
    assert set(queue) >= QUEUE_FIELDS
    assert queue["completed_count"] == 1
    assert queue["queue_size"] == 0
    assert queue["max_queue_size"] == 10
    assert queue["observer"] == "native"


def test_image_first_subfolder_and_jpeg_output(root: Path) -> None:
    inbox = root / "inbox"
    with ServiceProcess(root) as service:
        service.wait_ready()
        image = make_image(inbox / "station-3" / "IMG_7.JPG", size=(80, 60))
        # The image first: the sidecar comes once the image has been there past its settle time.
        wait_for(lambda: time.time() - image.stat().st_mtime > 0.5)
        write_sidecar(inbox / "station-3" / "IMG_7.yml", output={"format": "jpeg", "quality": 80})
        done = wait_for(lambda: has_status(root, "station-3/IMG_7", "completed", "failed"))
        assert service.stop() == 0
    assert done["status"] == "completed", done
    assert done["source"] == "inbox/station-3/IMG_7.JPG"
    assert done["result_path"] == "outbox/station-3/IMG_7.jpeg"
    with Image.open(root / done["result_path"]) as im:
        assert im.format == "JPEG"
        assert im.size == (80, 60)
    assert files_under(root / "archive") == ["station-3/IMG_7.JPG", "station-3/IMG_7.yml"]
    assert not image.exists()


def test_same_name_redrop_gets_a_new_name(root: Path) -> None:
    inbox = root / "inbox"
    with ServiceProcess(root) as service:
        service.wait_ready()
        drop_pair(inbox, "shot", seed=1)
        wait_for(lambda: has_status(root, "shot", "completed"))
        drop_pair(inbox, "shot", seed=2)
        second = wait_for(lambda: has_status(root, "shot~2", "completed"))
        assert service.stop() == 0
    assert second["result_seed"] == 2
    assert status_of(root, "shot")["result_seed"] == 1  # type: ignore[index]
    assert files_under(root / "archive") == ["shot.jpg", "shot.yaml", "shot~2.jpg", "shot~2.yaml"]
    assert (root / "outbox" / "shot.png").exists()
    assert (root / "outbox" / "shot~2.png").exists()


def test_bad_sidecar_goes_to_failed_with_reason_and_status(root: Path) -> None:
    inbox = root / "inbox"
    with ServiceProcess(root) as service:
        service.wait_ready()
        drop_pair(inbox, "bad", colour="blue")
        failed = wait_for(lambda: has_status(root, "bad", "failed"))
        # The service keeps going after bad input.
        drop_pair(inbox, "good")
        wait_for(lambda: has_status(root, "good", "completed"))
        assert service.stop() == 0
    assert failed["error_code"] == "invalid_sidecar"
    assert "colour" in failed["error"]
    reason = (root / "failed" / "bad.reason.txt").read_text()
    assert reason.startswith("invalid_sidecar: ")
    assert "colour" in reason.splitlines()[0]
    assert files_under(root / "failed") == ["bad.jpg", "bad.reason.txt", "bad.yaml"]


def test_lone_files_are_rejected_after_the_wait(root: Path) -> None:
    write_config(root, sidecar_wait_seconds=1)
    inbox = root / "inbox"
    with ServiceProcess(root) as service:
        service.wait_ready()
        make_image(inbox / "alone.png")
        write_sidecar(inbox / "orphan.yaml")
        lone_image = wait_for(lambda: has_status(root, "alone", "failed"))
        lone_sidecar = wait_for(lambda: has_status(root, "orphan", "failed"))
        assert service.stop() == 0
    assert lone_image["error_code"] == "no_sidecar"
    assert lone_sidecar["error_code"] == "no_image"
    assert (root / "failed" / "alone.png").exists()
    assert (root / "failed" / "orphan.yaml").exists()
    assert (root / "failed" / "alone.reason.txt").read_text().startswith("no_sidecar: ")


def test_burst_into_a_small_cap_never_overfills_pending(root: Path) -> None:
    write_config(root, max_pending=3, editor={"name": "identity", "delay_seconds": 1.0})
    inbox = root / "inbox"
    seen_pending: list[int] = []
    stop = threading.Event()

    def watch_pending() -> None:
        while not stop.is_set():
            seen_pending.append(
                sum(1 for p in (root / "pending").rglob("*.jpg"))
                if (root / "pending").exists()
                else 0
            )
            time.sleep(0.01)

    watcher = threading.Thread(target=watch_pending)
    with ServiceProcess(root) as service:
        service.wait_ready()
        watcher.start()
        try:
            staging = root / "staging"
            for i in range(10):
                drop_pair(staging, f"b{i:02d}")
            # Arrive together, as a copy of a folder does.
            for path in sorted(staging.iterdir()):
                path.rename(inbox / path.name)
            names = [f"b{i:02d}" for i in range(10)]
            wait_for(
                lambda: all(has_status(root, n, "completed", "failed") for n in names),
                timeout=90,
            )
        finally:
            stop.set()
            watcher.join()
        assert service.stop() == 0
    statuses = {n: status_of(root, n) for n in names}
    completed = [n for n, s in statuses.items() if s and s["status"] == "completed"]
    full = [n for n, s in statuses.items() if s and s.get("error_code") == "queue_full"]
    assert max(seen_pending) <= 3
    assert len(completed) >= 3
    assert len(full) >= 1
    assert sorted(completed + full) == names
    for n in full:
        assert (root / "failed" / f"{n}.jpg").exists()
        assert (root / "failed" / f"{n}.reason.txt").read_text().startswith("queue_full: ")
    for n in completed:
        assert (root / "archive" / f"{n}.jpg").exists()
    assert files_under(inbox) == []


def test_kill_9_during_processing_then_restart_finishes_the_job(root: Path) -> None:
    write_config(root, editor={"name": "identity", "delay_seconds": 30})
    inbox = root / "inbox"
    with ServiceProcess(root) as service:
        service.wait_ready()
        drop_pair(inbox, "victim")
        wait_for(lambda: has_status(root, "victim", "processing"))
        service.kill()
    assert (root / "processing" / "victim.jpg").exists()
    write_config(root, editor={"name": "identity", "delay_seconds": 0})
    with ServiceProcess(root) as service:
        done = wait_for(lambda: has_status(root, "victim", "completed"))
        assert service.stop() == 0
    assert done["attempts"] == 2
    assert files_under(root / "archive") == ["victim.jpg", "victim.yaml"]
    assert files_under(root / "processing") == []


def test_crash_past_max_attempts_is_failed_as_crashed(root: Path) -> None:
    write_config(root, max_attempts=1, editor={"name": "identity", "delay_seconds": 30})
    with ServiceProcess(root) as service:
        service.wait_ready()
        drop_pair(root / "inbox", "poison")
        wait_for(lambda: has_status(root, "poison", "processing"))
        service.kill()
    with ServiceProcess(root) as service:
        failed = wait_for(lambda: has_status(root, "poison", "failed"))
        assert service.stop() == 0
    assert failed["error_code"] == "crashed"
    reason = (root / "failed" / "poison.reason.txt").read_text()
    assert reason.startswith("crashed: the service stopped during this job (1 time; ")
    assert "None" not in reason and "hotfolder retry poison" in reason
    assert (root / "failed" / "poison.jpg").exists()


def test_sigterm_mid_job_lets_it_finish_and_exits_0(root: Path) -> None:
    write_config(root, editor={"name": "identity", "delay_seconds": 2})
    with ServiceProcess(root) as service:
        service.wait_ready()
        drop_pair(root / "inbox", "inflight")
        wait_for(lambda: has_status(root, "inflight", "processing"))
        service.signal(signal.SIGTERM)
        assert service.wait() == 0, service.log()
    assert has_status(root, "inflight", "completed")
    assert (root / "outbox" / "inflight.png").exists()


def test_second_signal_puts_the_job_back_at_the_head(root: Path) -> None:
    write_config(root, editor={"name": "identity", "delay_seconds": 60})
    with ServiceProcess(root) as service:
        service.wait_ready()
        drop_pair(root / "inbox", "first")
        wait_for(lambda: has_status(root, "first", "processing"))
        drop_pair(root / "inbox", "second")
        wait_for(lambda: has_status(root, "second", "queued"))
        service.signal(signal.SIGTERM)
        wait_for(lambda: "finishing the jobs in flight" in service.log())
        service.signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0, service.log()
    first = status_of(root, "first")
    assert first is not None
    assert first["status"] == "queued"
    assert first["position"] == 1
    # Queued again, as if never started: its interrupted attempt's start is not kept.
    assert first.get("started_at") is None
    assert (root / "pending" / "first.jpg").exists()
    assert files_under(root / "processing") == []


def test_a_second_service_on_the_same_root_is_refused(root: Path) -> None:
    with ServiceProcess(root) as service:
        service.wait_ready()
        second = hotfolder("run", "--root", str(root), cwd=root)
        assert service.stop() == 0
    assert second.returncode == 2
    assert "another hotfolder service" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1


def test_readers_never_see_a_torn_status_file(root: Path) -> None:
    inbox = root / "inbox"
    errors: list[str] = []
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            for path in list((root / "outbox").glob("*.json")):
                try:
                    text = path.read_text()
                except FileNotFoundError:
                    continue
                try:
                    json.loads(text)
                    reads += 1
                except ValueError as e:
                    errors.append(f"{path.name}: {e}: {text[:80]!r}")

    thread = threading.Thread(target=reader)
    with ServiceProcess(root) as service:
        service.wait_ready()
        thread.start()
        try:
            for i in range(8):
                drop_pair(inbox, f"r{i}")
            wait_for(lambda: all(has_status(root, f"r{i}", "completed") for i in range(8)))
        finally:
            stop.set()
            thread.join()
        assert service.stop() == 0
    assert reads > 100
    assert errors == []


def test_run_once_drains_then_exits_and_status_works_with_service_down(root: Path) -> None:
    drop_pair(root / "inbox", "a")
    drop_pair(root / "inbox", "b", priority="high")
    result = hotfolder("run", "--once", "--root", str(root), cwd=root)
    assert result.returncode == 0, result.stderr
    assert has_status(root, "a", "completed")
    assert has_status(root, "b", "completed")
    summary = hotfolder("status", "--json", "--root", str(root), cwd=root)
    assert summary.returncode == 0, summary.stderr
    data = json.loads(summary.stdout)
    assert data["service"] == "stopped"
    assert data["completed_count"] == 2
    one = hotfolder("status", "a", "--json", "--root", str(root), cwd=root)
    assert json.loads(one.stdout)["status"] == "completed"
    missing = hotfolder("status", "nope", "--root", str(root), cwd=root)
    assert missing.returncode == 1
    assert "nope" in missing.stderr
