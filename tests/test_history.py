"""The history database: one row per job, updated at every change of state."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from support import jobs_on
from test_spool import manifest_for

from hotfolder.config import load_config
from hotfolder.history import History
from hotfolder.jobstatus import JobStatus
from hotfolder.layout import Layout
from hotfolder.spool import JobState
from hotfolder.state import ServiceState
from hotfolder.written import Written


def test_a_batch_of_queued_jobs_is_recorded_in_one_transaction(tmp_path: Path) -> None:
    config = load_config(root=tmp_path, overrides={"editor.name": "identity"})
    layout = Layout(config.root_path)
    layout.create()
    jobs = jobs_on(layout, config)
    history = History(tmp_path / "history.db")
    jobs.board.history = history
    commits: list[str] = []
    history._db.set_trace_callback(  # the statements SQLite runs, as it runs them
        lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None
    )
    manifests = [manifest_for(jobs.spool, layout, name) for name in ("a", "b", "c")]
    jobs.board.queued_many(manifests)
    assert len(commits) == 1
    rows = history.query()
    assert sorted((row["name"], row["status"]) for row in rows) == [
        ("a", "queued"),
        ("b", "queued"),
        ("c", "queued"),
    ]
    # A later state of one of them replaces its row.
    history.record(JobStatus(job_id=manifests[1].job_id, name="b", status=JobState.processing))
    assert [row["status"] for row in history.query(name="b")] == ["processing"]
    history.close()
    with sqlite3.connect(tmp_path / "history.db") as db:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (3,)


def test_a_publish_keeps_the_status_an_admission_wrote_while_its_batch_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The publisher snapshots a drop as waiting; before its batch is put in place, the
    drop's admission writes its queued status: the publisher's older one must not win."""
    layout = Layout(tmp_path)
    layout.create()
    files = Written(layout, ServiceState(), threading.Event())
    io = threading.Lock()
    waiting = JobStatus(job_id="J1", name="a", status=JobState.waiting, detail="settling")
    queued = JobStatus(job_id="J1", name="a", status=JobState.queued, position=1)
    other = JobStatus(job_id="J2", name="b", status=JobState.waiting, detail="settling")
    real_stage = files.stage

    def stage_then_admit(due: list[tuple[JobStatus, dict[str, object]]]) -> object:
        staged = real_stage(due)
        with io:  # what an admission's batch does, holding the board's write order
            layout.status_path("a").write_bytes(b'{"status": "queued"}')
            files.wrote(queued)
        return staged

    monkeypatch.setattr(files, "stage", stage_then_admit)
    files.write_batch([waiting, other], io=io, closed=set())
    assert layout.status_path("a").read_bytes() == b'{"status": "queued"}'
    assert '"waiting"' in layout.status_path("b").read_text()
    assert not list(layout.outbox.glob(".hf-*"))
    assert files.moved_only(queued)
