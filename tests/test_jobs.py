"""The one owner of job state: legal moves only, an atomic claim, put-backs in order."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import files_under, read_json
from test_spool import manifest_for

from hotfolder.backoff import WRITE_BACKOFF_SECONDS
from hotfolder.config import Config
from hotfolder.jobs import IllegalTransition, Jobs, check_transition
from hotfolder.layout import Layout
from hotfolder.spool import JobState, Manifest, Spool
from hotfolder.state import ServiceState
from hotfolder.status import Board


def make_jobs(root: Path, **config: object) -> Jobs:
    layout = Layout(root)
    layout.create()
    settings = Config(root=root, **config)  # type: ignore[arg-type]
    state = ServiceState()
    board = Board(layout, settings, state=state)
    return Jobs(layout, settings, Spool(layout), board, state)


def admit(jobs: Jobs, *names: str) -> None:
    for name in names:
        jobs.admit(manifest_for(jobs.spool, jobs.layout, name))


def take(jobs: Jobs, worker: str, device: str = "cpu") -> Manifest | None:
    """A claim as the dispatcher makes it: in memory, then (after the hand-over) on disk."""
    claimed = jobs.claim(worker, device)
    if claimed is not None:
        jobs.record_claim(claimed.name)
    return claimed


def test_a_claim_takes_the_worker_and_the_start_and_moves_the_job_to_processing(
    tmp_path: Path,
) -> None:
    jobs = make_jobs(tmp_path)
    admit(jobs, "a", "b")
    claimed = take(jobs, "cuda:1", "cuda:1")
    assert claimed is not None
    assert (claimed.name, claimed.state, claimed.worker, claimed.device) == (
        "a",
        JobState.processing,
        "cuda:1",
        "cuda:1",
    )
    assert claimed.started_at is not None
    # On disk the claim is where the job is: its manifest and files in processing/.
    assert files_under(jobs.layout.manifests(jobs.layout.processing)) == ["a.job.json"]
    assert files_under(jobs.layout.processing) == ["a.jpg"]
    # The claim's fields reach the disk with the job's ending; after a crash before it, the
    # job was running, and goes back to the head of the queue with an attempt counted.
    after_crash = make_jobs(tmp_path)
    after_crash.recover()
    queued = after_crash.queued()
    assert [m.name for m in queued] == ["a", "b"]
    assert (queued[0].attempts, queued[0].head) == (2, True)
    assert files_under(jobs.layout.pending) == ["a.jpg", "b.jpg"]


def test_a_claim_is_in_memory_until_recorded_so_a_crash_before_leaves_it_queued(
    tmp_path: Path,
) -> None:
    jobs = make_jobs(tmp_path)
    admit(jobs, "a", "b")
    claimed = jobs.claim("cpu", "cpu")
    assert claimed is not None and claimed.name == "a"
    assert [m.name for m in jobs.queued()] == ["b"]  # nobody else can take it
    assert files_under(jobs.layout.processing) == []
    after_crash = make_jobs(tmp_path)
    after_crash.spool.load()
    assert [m.name for m in after_crash.queued()] == ["a", "b"]
    jobs.record_claim("a")
    jobs.record_claim("a")  # idempotent
    assert files_under(jobs.layout.processing) == ["a.jpg"]


def test_a_claim_cut_short_is_finished_on_load(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path)
    admit(jobs, "a")
    manifest = jobs.spool.queued()[0]
    # The claim's first step (the manifest rewritten in pending/) and a crash before the move.
    claimed = manifest.model_copy(update={"state": JobState.processing, "worker": "cpu"})
    jobs.spool.update(claimed)
    again = make_jobs(tmp_path)
    again.spool.load()
    assert [m.name for m in again.spool.processing()] == ["a"]
    assert again.spool.queued() == []


def test_cancel_between_claim_and_edit_asks_the_slot_and_never_raises(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path)
    asked: list[str] = []
    jobs.stop_running = lambda manifest: asked.append(manifest.name)
    admit(jobs, "a")
    assert take(jobs, "cpu", "cpu") is not None
    ok, message = jobs.cancel("a")
    assert ok and "being cancelled" in message
    assert asked == ["a"]
    assert jobs.fail("a", "cancelled", "cancelled while processing", state=JobState.cancelled)
    assert jobs.find("a") is None
    assert (tmp_path / "failed" / "a.reason.txt").read_text().startswith("cancelled: ")


def test_illegal_moves_are_refused(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path)
    admit(jobs, "a")
    queued = jobs.spool.queued()[0]
    with pytest.raises(IllegalTransition):
        check_transition(queued, JobState.completed)  # never edited
    with pytest.raises(IllegalTransition):
        check_transition(queued.model_copy(update={"state": JobState.completed}), JobState.queued)
    # complete() of a job that is not running changes nothing.
    assert not jobs.complete("a", b"data", ".png")
    assert [m.name for m in jobs.queued()] == ["a"]


def test_lost_jobs_go_back_to_the_head_in_order_then_crash(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path, max_attempts=2)
    admit(jobs, "a", "b", "c", "d")
    first, second = take(jobs, "cpu#1", "cpu"), take(jobs, "cpu#2", "cpu")
    assert first is not None and second is not None
    # Lost in the opposite order: the queue keeps their original order at its head.
    jobs.put_back("b", lost="the slot died")
    jobs.put_back("a", lost="the slot died")
    assert [m.name for m in jobs.queued()] == ["a", "b", "c", "d"]
    assert [m.attempts for m in jobs.queued()[:2]] == [2, 2]
    assert jobs.queued()[0].errors == ["attempt 1: the slot died"]
    again = take(jobs, "cpu#1", "cpu")
    assert again is not None and again.name == "a"
    jobs.put_back("a", lost="the slot died again")
    status = read_json(tmp_path / "outbox" / "a.status.json")
    assert status is not None
    assert (status["status"], status["error_code"], status["attempts"]) == ("failed", "crashed", 2)
    assert status["error"] == "the slot died again (2 times; max_attempts is 2)"


def test_a_retried_job_crashes_only_once_the_service_died_max_attempts_times(
    tmp_path: Path,
) -> None:
    # SPEC: `crashed` is "the service died during this job max_attempts times"; the
    # operator's retries raise `attempts` but are not deaths.
    jobs = make_jobs(tmp_path, max_attempts=2)
    admit(jobs, "a")
    queued = jobs.queued()[0]
    jobs.spool.update(queued.model_copy(update={"attempts": 5}))  # retried four times
    assert take(jobs, "cpu#1", "cpu") is not None
    jobs.put_back("a", lost="the service stopped during this job")
    again = jobs.queued()[0]
    assert (again.name, again.attempts, again.crashes) == ("a", 6, 1)
    assert take(jobs, "cpu#1", "cpu") is not None
    jobs.put_back("a", lost="the service stopped during this job")
    status = read_json(tmp_path / "outbox" / "a.status.json") or {}
    assert (status["status"], status["error_code"]) == ("failed", "crashed")
    assert status["error"] == "the service stopped during this job (2 times; max_attempts is 2)"


def test_recovery_puts_every_job_in_flight_back_in_order(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path)
    admit(jobs, "a", "b", "c")
    for worker in ("s1", "s2"):
        assert take(jobs, worker, "cpu") is not None
    restarted = make_jobs(tmp_path)
    restarted.recover()
    queued = restarted.queued()
    assert [m.name for m in queued] == ["a", "b", "c"]
    assert [m.attempts for m in queued] == [2, 2, 1]
    assert files_under(tmp_path / "processing") == []


def test_a_result_the_disk_refuses_puts_the_job_back_and_pauses_dispatch(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path)
    admit(jobs, "sub/a")
    assert take(jobs, "cpu", "cpu") is not None
    (tmp_path / "outbox" / "sub").write_text("a file where the folder should be")
    assert not jobs.complete("sub/a", b"png", ".png")
    assert [m.name for m in jobs.queued()] == ["sub/a"]
    assert jobs.queued()[0].attempts == 1  # not the job's fault
    assert not jobs.can_dispatch()
    assert "cannot write results" in (jobs.state.get("worker") or "")


def test_the_write_back_off_ends_on_the_injected_clock_without_waiting(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    config = Config(root=tmp_path)
    now = [500.0]
    state = ServiceState()
    jobs = Jobs(
        layout,
        config,
        Spool(layout),
        Board(layout, config, state=state),
        state,
        monotonic=lambda: now[0],
    )
    admit(jobs, "sub/a")
    assert take(jobs, "cpu", "cpu") is not None
    (tmp_path / "outbox" / "sub").write_text("in the way")
    assert not jobs.complete("sub/a", b"png", ".png")
    assert take(jobs, "cpu", "cpu") is None  # backing off
    now[0] += WRITE_BACKOFF_SECONDS - 0.1
    assert not jobs.can_dispatch()
    now[0] += 0.2
    (tmp_path / "outbox" / "sub").unlink()
    claimed = take(jobs, "cpu", "cpu")
    assert claimed is not None and claimed.name == "sub/a"
    assert jobs.complete("sub/a", b"png", ".png")
    assert jobs.state.get("worker") is None  # the note clears when its cause ends


def test_a_job_goes_on_while_inbox_cannot_be_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # inbox/ on a share that dropped out (EACCES, EIO): the job's files are in pending/
    # since its admission, and nothing about it needs inbox/.
    import errno
    import os

    jobs = make_jobs(tmp_path)
    admit(jobs, "a", "b")
    inbox = os.fspath(jobs.layout.inbox)
    real_stat, real_lstat = os.stat, os.lstat

    def refused(real):  # type: ignore[no-untyped-def]
        def look(path, *args, **kwargs):  # type: ignore[no-untyped-def]
            if os.fspath(path).startswith(inbox):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real(path, *args, **kwargs)

        return look

    monkeypatch.setattr(os, "stat", refused(real_stat))
    monkeypatch.setattr(os, "lstat", refused(real_lstat))
    claimed = take(jobs, "cpu#1")
    assert claimed is not None
    assert files_under(tmp_path / "processing") == ["a.jpg"]
    assert jobs.complete("a", b"png bytes", ".png")
    assert (read_json(tmp_path / "outbox" / "a.status.json") or {})["status"] == "completed"
    # Put back, as a lost worker's job is: at the head of the queue, files and all.
    assert take(jobs, "cpu#1") is not None
    jobs.put_back("b", lost="the slot died")
    assert [m.name for m in jobs.queued()] == ["b"]
    assert files_under(tmp_path / "pending") == ["b.jpg"]
