"""A truthful queue.json: the service's state, waits only while jobs will start, notes that
clear with their cause, workers with progress; thumbnails leave with their status files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from support import drop_pair, read_json, write_config
from test_jobs import admit, make_jobs, take

from hotfolder import thumbs
from hotfolder.config import load_config
from hotfolder.editors.identity import IdentityEditor
from hotfolder.errors import HotfolderError
from hotfolder.service import EditorsUnavailable, Service
from hotfolder.state import Phase


def test_queue_json_says_the_state_and_waits_are_null_unless_jobs_will_start(
    tmp_path: Path,
) -> None:
    jobs = make_jobs(tmp_path)
    admit(jobs, "a", "b")
    shown = {}
    for phase, paused in (
        (Phase.starting, False),
        (Phase.running, False),
        (Phase.running, True),
        (Phase.stopping, False),
        (Phase.stopped, False),
    ):
        jobs.state.phase, jobs.state.paused = phase, paused
        jobs.board.publish(refresh=True)
        queue = read_json(tmp_path / "outbox" / "queue.json") or {}
        wait = (read_json(tmp_path / "outbox" / "b.status.json") or {})["estimated_wait_seconds"]
        shown[queue["state"]] = wait
    assert shown == {
        "starting": 20.0,
        "running": 20.0,
        "paused": None,
        "stopping": None,
        "stopped": None,
    }


def test_workers_in_queue_json_carry_their_jobs_progress(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path)
    admit(jobs, "a")
    claimed = take(jobs, "cpu")
    assert claimed is not None
    jobs.board._workers = lambda: [{"worker": "cpu", "device": "cpu", "job_id": claimed.job_id}]
    jobs.progress(claimed.job_id, 2, 4)
    jobs.board.publish()
    queue = read_json(tmp_path / "outbox" / "queue.json") or {}
    assert queue["workers"][0]["progress"] == {"step": 2, "steps": 4}


def test_thumbnails_leave_with_their_status_file_at_retention(tmp_path: Path) -> None:
    now = [1_000_000.0]
    jobs = make_jobs(tmp_path, status_retention_seconds=60)
    jobs.board._clock = lambda: now[0]
    jobs.board.recent.clock = jobs.board._clock
    admit(jobs, "sub/a")
    take(jobs, "cpu")
    pictures = [(jobs.layout.thumb_path("sub/a", kind), b"jpeg") for kind in thumbs.KINDS]
    assert jobs.complete("sub/a", b"png", ".png", pictures)
    assert jobs.board.recent.latest()[0].thumbs == (True, True)
    now[0] += 61
    assert jobs.board.sweep() == 1
    assert not jobs.layout.status_path("sub/a").exists()
    assert not jobs.layout.thumbs.exists() or not any(jobs.layout.thumbs.rglob("*"))


def service_on(root: Path, **config: object) -> Service:
    write_config(root, **config)
    return Service(load_config(root=root), editor=IdentityEditor())


def test_a_clean_run_leaves_stopped_no_notes_thumbnails_and_a_banner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    drop_pair(tmp_path / "inbox", "pic")
    service = service_on(tmp_path)
    assert service.state.phase == Phase.stopped
    with caplog.at_level(logging.INFO, logger="hotfolder.service"):
        assert service.run(once=True) == 0
    queue = read_json(tmp_path / "outbox" / "queue.json") or {}
    assert (queue["state"], queue["notes"], queue["completed_count"]) == ("stopped", {}, 1)
    for which in ("before", "after"):
        assert (tmp_path / "outbox" / ".thumbs" / f"pic.{which}.jpg").is_file()
    assert (tmp_path / "outbox" / "index.html").is_file()
    banner = next(r.message for r in caplog.records if "starting:" in r.message)
    for part in (f"root {tmp_path}", "config built-in defaults", "editor identity on cpu",
                 "max_pending 10", "observer native (unused: --once)", "metrics off"):  # fmt: skip
        assert part in banner, banner


def test_a_paused_stop_leaves_queued_jobs_without_a_wait(tmp_path: Path) -> None:
    drop_pair(tmp_path / "inbox", "held")
    (tmp_path / ".hotfolder").mkdir()
    (tmp_path / ".hotfolder" / "PAUSE").write_text("")
    assert service_on(tmp_path, settle_seconds=0).run(once=True) == 0
    status = read_json(tmp_path / "outbox" / "held.status.json") or {}
    assert (status["status"], status["position"], status["estimated_wait_seconds"]) == (
        "queued",
        1,
        None,
    )
    assert (read_json(tmp_path / "outbox" / "queue.json") or {})["state"] == "stopped"


class Broken(IdentityEditor):
    def load(self) -> None:
        raise HotfolderError("no weights in /models/qwen")


def test_a_failed_start_says_stopped_and_why_not_loading_model(tmp_path: Path) -> None:
    write_config(tmp_path)
    service = Service(load_config(root=tmp_path), editor=Broken())
    with pytest.raises(EditorsUnavailable):
        service.run(once=True)
    queue = read_json(tmp_path / "outbox" / "queue.json") or {}
    assert queue["state"] == "stopped"
    assert queue["notes"] == {"service": "stopped: no weights in /models/qwen"}


@pytest.mark.parametrize("size", [(120, 80), (600, 400), (1200, 800)])
def test_a_thumbnail_never_saves_the_image_it_is_made_from(size: tuple[int, int]) -> None:
    """The image is being encoded on another thread meanwhile (a result beside its encode),
    and saving an image sets attributes on it: the two saves must never share one."""
    from PIL import Image

    image = Image.new("RGB", size, (10, 200, 30))
    made = thumbs.make(image)
    assert made is not None and made.startswith(b"\xff\xd8")
    assert not hasattr(image, "encoderinfo")


def test_a_view_taken_before_an_admission_never_writes_waiting_over_queued(
    tmp_path: Path,
) -> None:
    # The publisher's view still shows a drop waiting when the admission writes its queued
    # status; the publisher's batch that follows must leave it queued (a station polling
    # would see its job go back).
    import threading

    from hotfolder import fsops
    from hotfolder.jobstatus import JobStatus
    from hotfolder.layout import Layout
    from hotfolder.spool import JobState
    from hotfolder.state import ServiceState
    from hotfolder.written import Written

    layout = Layout(tmp_path)
    layout.create()
    written = Written(layout, ServiceState(), threading.Event())
    detail = "waiting for the file to finish copying"
    waiting = JobStatus(job_id="J1", name="x", status=JobState.waiting, detail=detail)
    written.write(waiting)
    queued = JobStatus(job_id="J1", name="x", status=JobState.queued, position=1)
    fsops.write_json_atomic(layout.status_path("x"), queued.to_json())  # the admission's
    written.wrote(queued)
    written.write_batch([waiting], io=threading.Lock(), closed=set())
    written.write(waiting)
    assert (read_json(layout.status_path("x")) or {})["status"] == "queued"
