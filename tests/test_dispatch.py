"""The dispatcher: queue order over several slots, outcomes back through Jobs, the hang
watchdog on an injected clock, busy ratios."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from support import make_image, read_json, wait_for
from test_jobs import make_jobs

from hotfolder.dispatch import HUNG_GRACE_SECONDS, Busy, Dispatcher
from hotfolder.editors.base import EditRequest, EditResult, ProgressFn
from hotfolder.editors.identity import IdentityEditor
from hotfolder.jobs import Jobs
from hotfolder.layout import new_job_id
from hotfolder.slots.base import Slot
from hotfolder.slots.thread import ThreadSlot
from hotfolder.spool import Manifest


class Gate(IdentityEditor):
    """An identity editor that holds each job until the test opens its gate."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[str] = []
        self.gates: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def edit(self, request: EditRequest, progress: ProgressFn) -> EditResult:
        with self._lock:
            self.started.append(request.instruction)
            gate = self.gates.setdefault(request.instruction, threading.Event())
        while not gate.wait(0.02):
            progress(0, 1)
        return super().edit(request, progress)

    def open(self, name: str) -> None:
        with self._lock:
            self.gates.setdefault(name, threading.Event()).set()


def admit(jobs: Jobs, name: str) -> None:
    image = make_image(jobs.layout.inbox / f"{name}.png")
    jobs.admit(
        Manifest(
            job_id=new_job_id(),
            name=name,
            seq=jobs.spool.next_seq(),
            created_at="2026-11-29T00:00:00.000Z",
            source=f"inbox/{name}.png",
            image=f"{name}.png",
            inbox_image=jobs.layout.relative(image),
            spec={"instruction": name, "preset": "qwen-4step", "output": {"format": "png"}},
            seed=1,
        )
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def dispatcher(jobs: Jobs, editors: list[Any], clock: Clock | None = None) -> Dispatcher:
    def make(d: Dispatcher) -> list[Slot]:
        return [ThreadSlot(f"cpu#{i + 1}", "cpu", e, d) for i, e in enumerate(editors)]

    kwargs = {"monotonic": clock} if clock is not None else {}
    found = Dispatcher(jobs, jobs.config, make, **kwargs)  # type: ignore[arg-type]
    found.start()
    assert all(note is None for note in found.wait_loaded(30).values())
    return found


def test_jobs_go_to_free_slots_in_queue_order_and_complete(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path, max_pending=10)
    gates = [Gate(), Gate()]
    for name in ("a", "b", "c"):
        admit(jobs, name)
    work = dispatcher(jobs, gates)
    try:
        wait_for(lambda: len(gates[0].started) + len(gates[1].started) == 2, 10)
        assert sorted(gates[0].started + gates[1].started) == ["a", "b"]
        assert [m.name for m in jobs.queued()] == ["c"]
        workers = work.workers()
        assert sorted(w["name"] for w in workers) == ["a", "b"]
        assert {w["device"] for w in workers} == {"cpu"}
        for gate in gates:
            for name in ("a", "b", "c"):
                gate.open(name)
        wait_for((tmp_path / "outbox" / "c.png").exists, 10)
        wait_for(work.idle, 10)
        for name in ("a", "b", "c"):
            status = read_json(tmp_path / "outbox" / f"{name}.status.json")
            assert status is not None and status["status"] == "completed"
            assert status["device"] == "cpu"
    finally:
        work.stop()
        work.join()


def test_a_hung_slot_is_killed_and_its_job_fails_as_timeout(tmp_path: Path) -> None:
    jobs = make_jobs(
        tmp_path,
        presets={"qwen-4step": {"steps": 1, "job_timeout_seconds": 60}},
    )
    clock = Clock()
    gate = Gate()
    admit(jobs, "stuck")
    work = dispatcher(jobs, [gate], clock)
    try:
        wait_for(lambda: gate.started == ["stuck"], 10)
        clock.now += 60 + HUNG_GRACE_SECONDS - 1
        work.check()
        assert jobs.find("stuck") is not None  # not yet
        clock.now += 2
        work.check()
        wait_for(lambda: jobs.find("stuck") is None, 10)
        status = read_json(tmp_path / "outbox" / "stuck.status.json")
        assert status is not None
        assert (status["status"], status["error_code"]) == ("failed", "timeout")
        assert "60 s" in status["error"]
    finally:
        gate.open("stuck")
        work.stop()
        work.join()


@pytest.mark.parametrize(
    ("spans", "editing_since", "now", "expected"),
    [
        ([], None, 100.0, 0.0),
        ([(0.0, 50.0)], None, 100.0, 0.5),
        ([(0.0, 50.0)], 90.0, 100.0, 0.6),
        ([(0.0, 700.0)], None, 1000.0, 0.5),  # only the last 600 s count
    ],
)
def test_busy_ratio_is_the_editing_share_of_the_window(
    spans: list[tuple[float, float]], editing_since: float | None, now: float, expected: float
) -> None:
    busy = Busy(since=0.0)
    busy.spans.extend(spans)
    busy.editing_since = editing_since
    assert busy.ratio(now) == expected


def test_a_hand_over_under_way_is_busy_and_the_pictures_come_back(tmp_path: Path) -> None:
    """Pass: between the claim and the slot taking the ticket, the queue is empty and yet the
    dispatcher is not idle (`run --once` must not stop there); the job then completes with
    its before/after thumbnails written beside the outbox."""
    jobs = make_jobs(tmp_path)
    gate = Gate()
    work = dispatcher(jobs, [gate])
    held, release = threading.Event(), threading.Event()
    take = work.prefetch.take

    def slow_take(manifest: Manifest) -> Any:
        held.set()
        release.wait(10)
        return take(manifest)

    work.prefetch.take = slow_take  # type: ignore[method-assign]
    try:
        admit(jobs, "a")
        work.wake.set()
        assert held.wait(10)
        assert jobs.queued() == [] and not work.idle()
        release.set()
        gate.open("a")
        wait_for(
            lambda: (
                (read_json(tmp_path / "outbox" / "a.status.json") or {}).get("status")
                == "completed"
            ),
            10,
        )
        for which in ("before", "after"):
            assert (tmp_path / "outbox" / ".thumbs" / f"a.{which}.jpg").stat().st_size > 0
        wait_for(work.idle, 10)
    finally:
        release.set()
        work.stop()
        work.join()
