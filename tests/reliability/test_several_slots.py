"""Several slots (`editor.device: [cpu, cpu, cpu]`): kill -9 of the service or of one slot,
SIGTERM once and twice, with several jobs in flight at once (docs/workers.md)."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from support import (
    ServiceProcess,
    drop_pair,
    files_under,
    has_status,
    hotfolder,
    read_json,
    status_of,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

THREE = ["cpu", "cpu", "cpu"]
NAMES = ["j1", "j2", "j3"]


def slots_config(root: Path, delay: float, **overrides: Any) -> None:
    write_config(
        root,
        settle_seconds=0.1,
        editor={"name": "identity", "delay_seconds": delay, "device": THREE},
        **overrides,
    )


def queue_json(root: Path) -> dict[str, Any]:
    return read_json(root / "outbox" / "queue.json") or {}


def workers(root: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = queue_json(root).get("workers") or []
    return rows


def all_ready(root: Path) -> list[dict[str, Any]] | None:
    """Every slot up with a live process (queue.json may lag the log by a heartbeat)."""
    rows = workers(root)
    if len(rows) == len(THREE) and all(r.get("pid") for r in rows):
        return rows
    return None


def editing(root: Path, names: list[str]) -> dict[str, dict[str, Any]] | None:
    """queue.json's workers row of each job in `names`, once all of them are being edited."""
    rows = {r["name"]: r for r in workers(root) if r.get("name") and r.get("pid")}
    if all(n in rows for n in names):
        return {n: rows[n] for n in names}
    return None


def drop_in_order(root: Path, names: list[str]) -> None:
    """Drop the pairs one after another, each admitted before the next (queue order = names)."""
    for name in names:
        drop_pair(root / "inbox", name)
        wait_for(
            lambda n=name: has_status(root, n, "queued", "processing", "completed"),  # type: ignore[misc]
            what=f"{name} to be admitted",
        )


def gone(pid: int) -> bool:
    """The process has ended (a zombie waiting for its reaper counts as ended)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def restarted_once(root: Path) -> list[dict[str, Any]] | None:
    rows = all_ready(root)
    return rows if rows and any(r["restarts"] == 1 for r in rows) else None


def job_order(root: Path) -> list[tuple[str, str]]:
    return [(j["name"], j["status"]) for j in queue_json(root).get("jobs", [])]


def test_kill_9_with_three_jobs_in_flight_puts_them_back_in_order(tmp_path: Path) -> None:
    """Pass: with 3 slots editing j1, j2, j3 and j4 queued, a kill -9 of the service then a
    start (paused, to look) shows j1, j2, j3 back at the head of the queue in their original
    order with attempts 2, then j4 (attempts 1): in queue.json `jobs`, in the status files'
    `position`, with every file in pending/ and none in processing/; resumed, all complete."""
    slots_config(tmp_path, delay=60, max_attempts=3)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        drop_in_order(tmp_path, [*NAMES, "j4"])
        wait_for(lambda: editing(tmp_path, NAMES), what="three jobs in flight")
        assert has_status(tmp_path, "j4", "queued")
        service.kill()
    assert sorted(files_under(tmp_path / "processing")) == sorted(
        f"{n}.{ext}" for n in NAMES for ext in ("jpg", "yaml")
    )
    slots_config(tmp_path, delay=0.2, max_attempts=3)
    assert hotfolder("pause", "--root", str(tmp_path)).returncode == 0
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        order = wait_for(
            lambda: (o := job_order(tmp_path)) and len(o) == 4 and o,
            what="queue.json to list the four jobs",
        )
        assert order == [(n, "queued") for n in [*NAMES, "j4"]]
        for position, name in enumerate([*NAMES, "j4"], start=1):
            status = status_of(tmp_path, name)
            assert status is not None
            assert status["status"] == "queued", status
            assert status["position"] == position, status
            assert status["attempts"] == (1 if name == "j4" else 2), status
        assert files_under(tmp_path / "processing") == []
        assert len(files_under(tmp_path / "pending")) == 8
        assert hotfolder("resume", "--root", str(tmp_path)).returncode == 0
        done = [
            wait_for(lambda n=n: has_status(tmp_path, n, "completed"), what=f"{n} to complete")  # type: ignore[misc]
            for n in [*NAMES, "j4"]
        ]
        assert service.stop() == 0, service.log()
    assert [d["attempts"] for d in done] == [2, 2, 2, 1]
    assert files_under(tmp_path / "pending") == []
    assert files_under(tmp_path / "processing") == []
    assert len(files_under(tmp_path / "archive")) == 8


def test_a_slot_killed_from_outside_costs_its_job_an_attempt_and_restarts(tmp_path: Path) -> None:
    """Pass: kill -9 of the slot process editing j2 (its pid from queue.json `workers`) puts
    j2 back (queued, attempts 2) and it then completes with attempts 2; that slot comes back
    with a new pid and `restarts` 1; j1 and j3 complete on their slots with attempts 1, those
    slots keep their pids (restarts 0); the service pid never changes and it exits 0."""
    slots_config(tmp_path, delay=3, max_attempts=2)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        before = {r["worker"]: r for r in wait_for(lambda: all_ready(tmp_path))}
        drop_in_order(tmp_path, NAMES)
        rows = wait_for(lambda: editing(tmp_path, NAMES), what="three jobs in flight")
        victim = rows["j2"]
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: gone(victim["pid"]), timeout=10, what="the slot process to die")
        back = wait_for(
            lambda: (s := status_of(tmp_path, "j2")) and s["attempts"] == 2 and s,
            what="j2 to go back with attempts 2",
        )
        done = {
            n: wait_for(lambda n=n: has_status(tmp_path, n, "completed"), what=f"{n} done")  # type: ignore[misc]
            for n in NAMES
        }
        restarted = wait_for(
            lambda: restarted_once(tmp_path), what="the killed slot back with a live process"
        )
        after = {r["worker"]: r for r in restarted}
        assert service.proc.poll() is None, service.log()
        assert queue_json(tmp_path)["pid"] == service.proc.pid
        assert service.stop() == 0, service.log()
    assert back["status"] in ("queued", "processing", "completed")
    assert {n: d["attempts"] for n, d in done.items()} == {"j1": 1, "j2": 2, "j3": 1}
    killed = victim["worker"]
    assert after[killed]["restarts"] == 1
    assert after[killed]["pid"] not in (victim["pid"], None)
    for worker, row in after.items():
        if worker != killed:
            assert row["restarts"] == 0, row
            assert row["pid"] == before[worker]["pid"], (row, before[worker])
    assert "j2 goes back to the head of the queue" in service.log()
    assert files_under(tmp_path / "processing") == []
    assert len(files_under(tmp_path / "archive")) == 6


def test_no_slot_outlives_its_service(tmp_path: Path) -> None:
    """Pass: with 3 slots editing, kill -9 of the service's pid alone (not its process group)
    ends every slot process listed in queue.json within 5 s; a new service then completes
    the three jobs (attempts 2)."""
    slots_config(tmp_path, delay=60, max_attempts=3)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        drop_in_order(tmp_path, NAMES)
        rows = wait_for(lambda: editing(tmp_path, NAMES), what="three jobs in flight")
        pids = [r["pid"] for r in rows.values()]
        assert len(set(pids)) == 3
        assert all(not gone(pid) for pid in pids)
        os.kill(service.proc.pid, signal.SIGKILL)  # the pid alone: the slots get no signal
        service.proc.wait(timeout=30)
        wait_for(
            lambda: all(gone(pid) for pid in pids),
            timeout=5,
            what=f"the slot processes {pids} to end with their service",
        )
    slots_config(tmp_path, delay=0.2, max_attempts=3)
    with ServiceProcess(tmp_path) as service:
        done = [
            wait_for(lambda n=n: has_status(tmp_path, n, "completed"), what=f"{n} to complete")  # type: ignore[misc]
            for n in NAMES
        ]
        assert service.stop() == 0, service.log()
    assert [d["attempts"] for d in done] == [2, 2, 2]


def test_sigterm_lets_every_slot_finish_its_job(tmp_path: Path) -> None:
    """Pass: SIGTERM with j1, j2, j3 in flight on 3 slots and j4 queued: the three complete
    (attempts 1, results written), j4 is not started (still queued, in pending/), nothing
    is left in processing/, and the service exits 0."""
    slots_config(tmp_path, delay=4)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        drop_in_order(tmp_path, [*NAMES, "j4"])
        wait_for(lambda: editing(tmp_path, NAMES), what="three jobs in flight")
        service.signal(signal.SIGTERM)
        assert service.wait(timeout=60) == 0, service.log()
    for name in NAMES:
        done = has_status(tmp_path, name, "completed")
        assert done is not None, (name, status_of(tmp_path, name), service.log())
        assert done["attempts"] == 1
        assert (tmp_path / "outbox" / f"{name}.png").exists()
    waiting = status_of(tmp_path, "j4")
    assert waiting is not None
    assert waiting["status"] == "queued", waiting
    assert waiting["attempts"] == 1
    assert files_under(tmp_path / "pending") == ["j4.jpg", "j4.yaml"]
    assert files_under(tmp_path / "processing") == []
    assert "finishing the jobs in flight" in service.log()


def test_a_second_sigterm_puts_every_job_back_in_order_without_an_attempt(tmp_path: Path) -> None:
    """Pass: SIGTERM, then (once the log shows it was handled) a second SIGTERM, with j1,
    j2, j3 in flight on 3 slots and j4 queued: the service exits 0 within 30 s; j1, j2, j3
    are queued again at positions 1, 2, 3 with attempts 1 (no attempt charged), j4 at 4;
    queue.json `jobs` lists them in that order; processing/ is empty; a new service then
    completes all four with attempts 1."""
    slots_config(tmp_path, delay=60)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        drop_in_order(tmp_path, [*NAMES, "j4"])
        wait_for(lambda: editing(tmp_path, NAMES), what="three jobs in flight")
        service.signal(signal.SIGTERM)
        wait_for(lambda: "finishing the jobs in flight" in service.log(), what="the first signal")
        service.signal(signal.SIGTERM)
        assert service.wait(timeout=30) == 0, service.log()
    assert job_order(tmp_path) == [(n, "queued") for n in [*NAMES, "j4"]]
    assert files_under(tmp_path / "processing") == []
    assert len(files_under(tmp_path / "pending")) == 8
    statuses = [status_of(tmp_path, name) or {} for name in [*NAMES, "j4"]]
    assert [(s.get("status"), s.get("attempts")) for s in statuses] == [("queued", 1)] * 4
    # The files a station reads while the service is down agree with queue.json.
    assert [s["position"] for s in statuses] == [1, 2, 3, 4], statuses
    slots_config(tmp_path, delay=0.2)
    with ServiceProcess(tmp_path) as service:
        done = [
            wait_for(lambda n=n: has_status(tmp_path, n, "completed"), what=f"{n} to complete")  # type: ignore[misc]
            for n in [*NAMES, "j4"]
        ]
        assert service.stop() == 0, service.log()
    assert [d["attempts"] for d in done] == [1, 1, 1, 1]


def test_queue_json_shows_the_slots_ready_as_soon_as_the_service_is(tmp_path: Path) -> None:
    """Pass: once the log says the service is watching inbox/ (its slots are loaded), queue.json
    drops its `editor: loading model` note and lists every slot with a pid within 2 s, not
    at the next heartbeat (5 s later); a station waits for that before it drops."""
    slots_config(tmp_path, delay=0)
    with ServiceProcess(tmp_path) as service:
        wait_for(lambda: "with the native observer" in service.log(), what="the service to start")
        started = time.monotonic()
        wait_for(
            lambda: (
                (q := queue_json(tmp_path)).get("pid") == service.proc.pid
                and "editor" not in q.get("notes", {})
                and all_ready(tmp_path)
            ),
            timeout=30,
        )
        waited = time.monotonic() - started
        assert service.stop() == 0, service.log()
    assert waited < 2.0, f"queue.json said the service was ready {waited:.1f} s after it was"


def test_run_once_never_returns_with_a_job_just_claimed(tmp_path: Path) -> None:
    """Pass: twenty `run --once` in a row, each with a good pair and a bad one in inbox/ (as in
    test_crash_steps), each end with the good job completed at its first attempt and
    nothing left in pending/ or processing/ (a claimed job must reach its slot and finish
    before the drain counts the queue as empty)."""
    template = tmp_path / "template"
    write_config(template, settle_seconds=0, sidecar_wait_seconds=0, max_attempts=5)
    drop_pair(template / "inbox", "good", seed=1)
    drop_pair(template / "inbox" / "sub", "bad", colour="red")
    outcomes = []
    for run in range(20):
        root = tmp_path / f"run-{run}"
        shutil.copytree(template, root)
        result = hotfolder("run", "--once", "--root", str(root))
        assert result.returncode == 0, result.stderr[-3000:]
        status = status_of(root, "good") or {}
        outcomes.append((status.get("status"), status.get("attempts")))
        if outcomes[-1] != ("completed", 1):
            raise AssertionError(
                f"run {run} ended with good {outcomes[-1]}, pending/ "
                f"{files_under(root / 'pending')}:\n{result.stderr[-3000:]}"
            )
        assert files_under(root / "processing") == []
