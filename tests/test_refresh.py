"""Moved positions reach the status files in passes spread over publishes, so that new
states and queue.json never wait behind a whole refresh (issue 14)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

from support import read_json
from test_jobs import admit, make_jobs

from hotfolder.jobstatus import JobStatus
from hotfolder.layout import Layout
from hotfolder.refresh import POSITION_REFRESH_SECONDS, Refresh
from hotfolder.spool import JobState
from hotfolder.state import ServiceState
from hotfolder.written import Written

JOBS = 200


def queued(shift: int) -> list[JobStatus]:
    return [
        JobStatus(job_id=f"{i:026d}", name=f"j{i:03d}", status=JobState.queued, position=i + shift)
        for i in range(JOBS)
    ]


def rig(tmp_path: Path) -> tuple[Layout, Written, list[int]]:
    layout = Layout(tmp_path)
    layout.create()
    files = Written(layout, ServiceState(), threading.Event())
    files.write_batch(queued(0), io=threading.Lock(), closed=())
    return layout, files, []


def positions(layout: Layout) -> list[int]:
    return [(read_json(layout.status_path(f"j{i:03d}")) or {})["position"] for i in range(JOBS)]


def test_a_pass_is_spread_over_publishes_and_writes_each_file_once(tmp_path: Path) -> None:
    layout, files, batches = rig(tmp_path)
    clock = itertools.count(step=1.0)  # every look at the clock: a second later
    refresh = Refresh(files, monotonic=lambda: next(clock))

    def write(statuses: list[JobStatus]) -> None:
        batches.append(len(statuses))
        files.write_batch(statuses, io=threading.Lock(), closed=())

    shift = 0
    while True:
        shift += 1  # the queue moved again before each publish
        assert refresh.due(0.0)
        refresh.begin(0.0)
        files.changed.clear()
        refresh.write(queued(shift), write)
        if not refresh.going:
            break
        assert files.changed.is_set()  # the publisher comes back for the rest
    assert batches == [64, 64, 64, 8]
    # Each file was written once in the pass, with the position of its publish.
    assert positions(layout) == [i + 1 + i // 64 for i in range(JOBS)]
    assert refresh.every >= POSITION_REFRESH_SECONDS and not refresh.due(1.0)


def test_the_last_publish_writes_every_moved_position(tmp_path: Path) -> None:
    layout, files, batches = rig(tmp_path)
    clock = itertools.count(step=1.0)
    refresh = Refresh(files, monotonic=lambda: next(clock))

    def write(statuses: list[JobStatus]) -> None:
        batches.append(len(statuses))
        files.write_batch(statuses, io=threading.Lock(), closed=())

    refresh.begin(0.0)
    refresh.write(queued(1), write)
    assert refresh.going
    refresh.restart()
    refresh.begin(0.0)
    refresh.write(queued(2), write, whole=True)
    assert not refresh.going
    assert positions(layout) == [i + 2 for i in range(JOBS)]


def test_a_publish_writes_new_states_and_queue_json_before_the_rest_of_a_pass(
    tmp_path: Path,
) -> None:
    jobs = make_jobs(tmp_path)
    names = [f"q{i:03d}" for i in range(150)]
    admit(jobs, *names)
    board = jobs.board
    board.publish()
    clock = itertools.count(step=1.0)
    board.refresh.monotonic = lambda: next(clock)  # each chunk's time is up after one batch
    board.refresh.at = -1e9  # a refresh is due
    jobs.state.paused = True  # every queued job's estimated wait moves (to none)
    admit(jobs, "new")
    board.publish()

    def paused(name: str) -> bool:
        return (read_json(jobs.layout.status_path(name)) or {})["estimated_wait_seconds"] is None

    # The new job and queue.json at once; the moved waits one batch per publish.
    assert (read_json(jobs.layout.status_path("new")) or {})["status"] == "queued"
    assert (read_json(jobs.layout.queue_json) or {})["queued_count"] == 151
    assert sum(paused(name) for name in names) == 64
    assert board.changed.is_set() and board.refresh.going
    while board.refresh.going:
        board.publish()
    assert all(paused(name) for name in names)
