"""Per-station limits and fair turns (SPEC: "Per-station limits and fair turns"): the order in
force drives claims, positions and `hotfolder status` alike."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from support import read_json
from test_intake import Rig

from hotfolder.order import Key, QueueOrder, station_of

Job = tuple[str, Key]  # (name, (head, priority, seq))


def job(name: str, seq: int, *, high: bool = False, head: bool = False) -> Job:
    return (name, (0 if head else 1, 0 if high else 1, seq))


def arrange(order: QueueOrder, jobs: list[Job]) -> list[str]:
    return [name for name, _key in order.arrange(jobs, key=lambda j: j[1], name=lambda j: j[0])]


def first(order: QueueOrder, jobs: list[Job]) -> str | None:
    found = order.first(jobs, key=lambda j: j[1], name=lambda j: j[0])
    return None if found is None else found[0]


def test_stations_are_top_level_folders_and_inbox_itself() -> None:
    assert station_of("station-3/IMG_1") == "station-3"
    assert station_of("station-3/day-2/IMG_1") == "station-3"
    assert station_of("IMG_1") == ""


def test_fifo_is_priority_then_admission_order() -> None:
    jobs = [job("a/1", 1), job("a/2", 2), job("b/1", 3, high=True), job("c/1", 4, head=True)]
    assert arrange(QueueOrder("fifo"), jobs) == ["c/1", "b/1", "a/1", "a/2"]


def test_fair_takes_turns_each_station_first_in_first_out() -> None:
    jobs = [job(f"a/{i}", i) for i in range(1, 5)] + [job("b/1", 10), job("x", 11), job("b/2", 12)]
    order = QueueOrder("fair")
    assert arrange(order, jobs) == ["a/1", "b/1", "x", "a/2", "b/2", "a/3", "a/4"]


def test_fair_high_priority_goes_first_within_its_station_and_its_round() -> None:
    jobs = [job("a/1", 1), job("a/2", 2), job("b/1", 3), job("b/2", 4, high=True)]
    assert arrange(QueueOrder("fair"), jobs) == ["b/2", "a/1", "a/2", "b/1"]
    # Jobs put back at the head after a crash still go first.
    assert arrange(QueueOrder("fair"), [*jobs, job("c/9", 99, head=True)])[0] == "c/9"


def test_a_station_that_was_just_served_goes_to_the_back() -> None:
    order = QueueOrder("fair")
    jobs = [job(f"a/{i}", i) for i in range(1, 101)] + [job("b/1", 500)]
    taken = []
    for _ in range(4):
        name = first(order, jobs)
        assert name is not None
        order.served(name)
        taken.append(name)
        jobs = [j for j in jobs if j[0] != name]
    # Without the memory of turns, a/ (the oldest job) would win every turn.
    assert taken == ["a/1", "b/1", "a/2", "a/3"]


def test_first_and_upcoming_are_always_the_head_of_the_whole_order() -> None:
    rng = random.Random(14)
    for mode in ("fifo", "fair"):
        order = QueueOrder(mode)  # type: ignore[arg-type]
        for _ in range(200):
            jobs = [
                job(
                    f"{rng.choice(['a', 'b', 'c', ''])}/{n}".lstrip("/"),
                    n,
                    high=rng.random() < 0.2,
                    head=rng.random() < 0.05,
                )
                for n in rng.sample(range(1000), rng.randint(0, 30))
            ]
            expected = arrange(order, jobs)
            assert first(order, jobs) == (expected[0] if expected else None)
            for count in (1, 2, 4):  # what the decoder looks ahead at, without a full sort
                ahead = order.upcoming(jobs, key=lambda j: j[1], name=lambda j: j[0], count=count)
                assert [name for name, _key in ahead] == expected[:count]
            if expected and rng.random() < 0.5:
                order.served(expected[0])


def drop(rig: Rig, names: list[str]) -> None:
    for name in names:
        rig.drop(name)
    rig.tick()
    rig.tick(2.5)


def position(rig: Rig, name: str) -> int | None:
    status = read_json(rig.layout.outbox / f"{name}.status.json")
    assert status is not None
    return status["position"]


@pytest.fixture
def fair(tmp_path: Path) -> Rig:
    return Rig(tmp_path, dispatch="fair", max_pending=50)


def test_claims_positions_and_status_follow_the_fair_order(fair: Rig) -> None:
    drop(fair, [f"big/IMG_{i}" for i in range(5)])
    drop(fair, ["small/one", "loose"])
    expected = [
        "big/IMG_0",
        "small/one",
        "loose",
        "big/IMG_1",
        "big/IMG_2",
        "big/IMG_3",
        "big/IMG_4",
    ]
    assert fair.queued() == expected
    fair.board.publish(refresh=True)
    assert [position(fair, n) for n in expected] == [1, 2, 3, 4, 5, 6, 7]
    queue = read_json(fair.layout.queue_json)
    assert queue is not None
    assert [j["name"] for j in queue["jobs"]] == expected
    claimed = fair.jobs.claim("w", "cpu")
    assert claimed is not None and claimed.name == "big/IMG_0"
    fair.board.publish(refresh=True)
    # big/ was just served: small/ and loose go before its next job.
    assert fair.queued()[:3] == ["small/one", "loose", "big/IMG_1"]
    assert position(fair, "small/one") == 1


def test_fifo_stays_the_default(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_pending=50)
    drop(rig, [f"big/IMG_{i}" for i in range(3)])
    drop(rig, ["small/one"])
    assert rig.queued() == ["big/IMG_0", "big/IMG_1", "big/IMG_2", "small/one"]


def test_per_station_max_pending_is_a_full_queue_for_that_station(tmp_path: Path) -> None:
    rig = Rig(tmp_path, **{"per_station.max_pending": 2, "max_pending": 50})
    drop(rig, ["big/a", "big/b", "big/c", "small/a", "x", "y", "z"])
    assert rig.queued() == ["big/a", "big/b", "small/a", "x", "y"]
    reason = (rig.layout.failed / "big" / "c.reason.txt").read_text()
    assert reason.startswith(
        "queue_full: station big/ already has 2 jobs waiting (per_station.max_pending)"
    )
    assert "hotfolder retry --code queue_full" in reason
    assert rig.reason("z").startswith("queue_full: inbox/ itself (a station of its own)")


def _held_positions(
    mode: str, queued: list[Job], held: list[tuple[str, bool]], caps: tuple[int, int | None]
) -> dict[str, int | None]:
    """Positions of held drops (name, high) in drop order, beside `queued` jobs."""
    from hotfolder.config import Config
    from hotfolder.jobstatus import JobStatus
    from hotfolder.positions import Entry, Estimator, Hold, held_places
    from hotfolder.spool import JobState

    entries = [
        Entry(key, JobStatus(job_id=name, name=name, status=JobState.queued), "p")
        for name, key in queued
    ]
    holds = [
        (
            JobStatus(job_id=name, name=name, status=JobState.waiting),
            Hold((0.0, rank, name), high, "p"),
        )
        for rank, (name, high) in enumerate(held)
    ]
    statuses = held_places(
        QueueOrder(mode),  # type: ignore[arg-type]
        Estimator(Config()),
        entries,
        [],
        holds,
        slots=1,
        now=0.0,
        caps=caps,
    )
    return {s.name: s.position for s in statuses}


def test_a_held_high_drop_counts_the_jobs_that_start_while_older_drops_wait_for_room() -> None:
    # max_pending 2: n2 and n3 are queued; n4 and n5 were held before h1 and h2 (high).
    # Each start makes room for the next held drop in drop order, so the queue starts
    # n2, n3, n4, h1, h2, n5: h1 is not next, though it is high.
    queued = [job("n2", 2), job("n3", 3)]
    held = [("n4", False), ("n5", False), ("h1", True), ("h2", True)]
    assert _held_positions("fifo", queued, held, (2, None)) == {
        "n4": 3,
        "h1": 4,
        "h2": 5,
        "n5": 6,
    }
    # With room for everyone, the held high drops go first, as if admitted now.
    assert _held_positions("fifo", queued, held, (10, None)) == {
        "h1": 1,
        "h2": 2,
        "n4": 5,
        "n5": 6,
    }


def test_a_held_drop_waits_for_its_own_stations_room() -> None:
    # per_station.max_pending 1: a/2 waits for a/1 to start; b/1 joins at once.
    queued = [job("a/1", 1)]
    held = [("a/2", False), ("b/1", False)]
    assert _held_positions("fifo", queued, held, (10, 1)) == {"b/1": 2, "a/2": 3}


def test_under_fair_a_held_drop_waits_for_the_room_the_drops_before_it_take() -> None:
    # max_pending 1: a/1 is queued; a/2 was held before b/1. a/1 starts and makes room for
    # a/2 (drop order), which starts before b/1 can even join: b/1 is third, not second.
    queued = [job("a/1", 1)]
    held = [("a/2", False), ("b/1", False)]
    assert _held_positions("fair", queued, held, (1, None)) == {"a/2": 2, "b/1": 3}
    # With room for both, b/1 takes its station's turn at once.
    assert _held_positions("fair", queued, held, (10, None)) == {"b/1": 2, "a/2": 3}
