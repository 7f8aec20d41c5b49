"""`overflow: hold`: drops past the cap wait in inbox/ and come in, in drop order, as room
frees (SPEC: "Waiting, overflow and retries", "Per-station limits and fair turns")."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from support import (
    ServiceProcess,
    files_under,
    hotfolder,
    make_image,
    read_json,
    status_of,
    wait_for,
    write_config,
    write_sidecar,
)
from test_intake import Rig

from hotfolder import images
from hotfolder.held import FOR_ROOM
from hotfolder.intake import Intake
from hotfolder.retries import Selection, retry_selection


def drop(rig: Rig, names: list[str]) -> None:
    """Pairs dropped in this order: each image a second older than the next (drop order)."""
    for i, name in enumerate(names):
        image = make_image(rig.inbox / f"{name}.jpg")
        rig.intake.note(write_sidecar(rig.inbox / f"{name}.yaml"))
        os.utime(image, (1_700_000_000 + i, 1_700_000_000 + i))
        rig.intake.note(image)


def settle(rig: Rig) -> None:
    rig.tick()
    rig.tick(2.5)
    rig.board.publish(refresh=True)


def look(rig: Rig) -> None:
    """A tick, and a publish that brings every position up to date."""
    rig.tick(0.1)
    rig.board.publish(refresh=True)


def status(rig: Rig, name: str) -> dict[str, Any]:
    return read_json(rig.layout.status_path(name)) or {}


def held(rig: Rig, name: str) -> int:
    """The position of a drop held for room (failing if it is not one)."""
    shown = status(rig, name)
    assert (shown.get("status"), shown.get("detail")) == ("waiting", FOR_ROOM), shown
    assert shown["estimated_wait_seconds"] is not None
    position: int = shown["position"]
    return position


def free_one(rig: Rig) -> str:
    """A worker takes the next job: the queue has room for one more."""
    taken = rig.jobs.claim("w", "cpu")
    assert taken is not None
    rig.jobs.record_claim(taken.name)
    name: str = taken.name
    return name


def test_drops_past_the_cap_wait_in_inbox_and_come_in_in_drop_order(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_pending=2, overflow="hold")
    # Named against their drop order: the order is the images' times, not their names.
    drop(rig, ["e", "d", "c", "b", "a"])
    settle(rig)
    assert rig.queued() == ["e", "d"]
    assert [held(rig, n) for n in ["c", "b", "a"]] == [3, 4, 5]
    assert sorted(files_under(rig.inbox)) == [
        "a.jpg",
        "a.yaml",
        "b.jpg",
        "b.yaml",
        "c.jpg",
        "c.yaml",
    ]
    assert files_under(rig.layout.failed) == []
    queue = read_json(rig.layout.queue_json) or {}
    assert (queue["waiting_count"], queue["queued_count"]) == (3, 2)
    first = status(rig, "c")

    assert free_one(rig) == "e"
    look(rig)
    assert rig.queued() == ["d", "c"]
    admitted = status(rig, "c")
    assert admitted["status"] == "queued" and admitted["job_id"] == first["job_id"]
    assert [held(rig, n) for n in ["b", "a"]] == [3, 4]

    free_one(rig)
    free_one(rig)
    look(rig)
    assert rig.queued() == ["b", "a"]  # no `~2`: the names they waited under
    assert (read_json(rig.layout.queue_json) or {})["waiting_count"] == 0
    assert files_under(rig.inbox) == [] and files_under(rig.layout.failed) == []


def test_a_held_drop_is_not_overtaken_by_newer_drops_whatever_its_images_time(
    tmp_path: Path,
) -> None:
    # Windows copies and rsync keep the source's time: years old, or in the future.
    rig = Rig(tmp_path, max_pending=1, overflow="hold")
    drop(rig, ["first", "future"])
    future = rig.inbox / "future.jpg"
    os.utime(future, (4_000_000_000, 4_000_000_000))  # the year 2096
    rig.intake.note(future)
    settle(rig)
    assert rig.queued() == ["first"]
    assert held(rig, "future") == 2
    # Newer drops, their images older than `future`'s (and `old` older than all).
    drop(rig, ["new"])
    settle(rig)
    old = make_image(rig.inbox / "old.jpg")
    os.utime(old, (1_000_000_000, 1_000_000_000))
    rig.intake.note(old)
    rig.intake.note(write_sidecar(rig.inbox / "old.yaml"))
    settle(rig)
    assert [held(rig, n) for n in ["future", "new", "old"]] == [2, 3, 4]
    # Room frees one job at a time: they come in in the order they were held.
    for name in ["future", "new", "old"]:
        free_one(rig)
        look(rig)
        assert rig.queued() == [name]


def test_a_held_drop_is_not_probed_or_read_again_while_it_waits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded: list[str] = []

    def counting(real: Any) -> Any:
        def count(path: Path, **kwargs: Any) -> Any:
            decoded.append(path.name)
            return real(path, **kwargs)

        return count

    # With a short queue intake decodes for the editor instead (decoded.py): count both.
    monkeypatch.setattr(images, "probe", counting(images.probe))
    monkeypatch.setattr(images, "load_for_edit", counting(images.load_for_edit))
    rig = Rig(tmp_path, max_pending=1, overflow="hold")
    drop(rig, ["first", "second"])
    settle(rig)
    for _ in range(5):
        rig.tick(1)
    assert sorted(decoded) == ["first.jpg", "second.jpg"]
    assert held(rig, "second") == 2
    # A file that changes is looked at afresh: copied again, say, with another sidecar.
    write_sidecar(rig.inbox / "second.yaml", instruction="something else")
    rig.intake.note(rig.inbox / "second.yaml")
    rig.tick(0.1)
    rig.tick(2.5)
    assert held(rig, "second") == 2
    free_one(rig)
    rig.tick(0.1)
    assert rig.queued() == ["second"]
    assert rig.spool.queued()[0].spec["instruction"] == "something else"


def test_a_held_drop_is_looked_at_once_a_second_not_on_every_tick(tmp_path: Path) -> None:
    """200 drops held for room cost the service a look each a second, not one a tick (the
    loop ticks ten times a second while anything is tracked); a drop about to be admitted
    is looked at afresh first."""
    rig = Rig(tmp_path, max_pending=1, overflow="hold")
    drop(rig, ["first", "second", "third"])
    settle(rig)
    looked: list[str] = []
    real = rig.intake.looking.lstat

    def counting(path: Path) -> os.stat_result:
        looked.append(path.name)
        return real(path)

    rig.intake.looking.lstat = counting
    rig.tick(0.1)
    for _ in range(5):
        rig.tick(0.1)
    assert looked == []  # settled, unchanged as far as anyone said: filed as last seen
    rig.tick(0.6)  # a second since the last look
    assert sorted(looked) == ["second.jpg", "second.yaml", "third.jpg", "third.yaml"]
    looked.clear()
    rig.tick(0.1)
    assert looked == []
    free_one(rig)
    rig.tick(0.1)
    assert rig.queued() == ["second"]
    assert sorted(looked) == ["second.jpg", "second.yaml"]  # afresh, before it was admitted
    rig.board.publish(refresh=True)
    assert held(rig, "third") == 2


def test_a_held_drop_changed_unseen_is_looked_at_before_it_is_admitted(tmp_path: Path) -> None:
    """A copy that starts again over a held drop with no event (a share whose writes the
    observer never sees) is not admitted on how the files looked before."""
    rig = Rig(tmp_path, max_pending=1, overflow="hold")
    drop(rig, ["first", "second"])
    settle(rig)
    rig.tick(0.1)
    image = rig.inbox / "second.jpg"
    with image.open("ab") as handle:  # being written again, and no one said so
        handle.write(b"\0" * 10)
    free_one(rig)
    rig.tick(0.1)
    assert rig.queued() == []  # it changed: it settles again first
    make_image(image)
    rig.tick(0.1)
    rig.tick(2.5)
    assert rig.queued() == ["second"]


def test_a_held_drop_takes_its_reference_images_when_it_is_admitted(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_pending=1, overflow="hold")
    logo = make_image(rig.inbox / "_logo.png", color=(0, 0, 255))
    drop(rig, ["first", "second"])
    write_sidecar(rig.inbox / "second.yaml", images=["_logo.png"])
    settle(rig)
    assert held(rig, "second") == 2
    make_image(logo, color=(0, 255, 0))  # the asset changes while the drop is held
    free_one(rig)
    look(rig)
    assert rig.queued() == ["second"]
    copy = rig.layout.pending / "second.ref1._logo.png"
    assert copy.read_bytes() == logo.read_bytes()  # as it is now, when the job took it


def test_the_queue_full_reason_says_how_many_are_ahead_and_what_to_do(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_pending=2)  # overflow: reject, the default
    drop(rig, ["a", "b", "c"])
    rig.tick()
    rig.tick(2.5)
    free_one(rig)
    drop(rig, ["d", "e"])
    rig.tick(0.1)
    rig.tick(2.5)
    assert rig.queued() == ["b", "d"]
    text = (rig.layout.failed / "e.reason.txt").read_text()
    assert text.startswith("queue_full: the queue is full (2 jobs waiting): 3 jobs are ahead")
    assert "`overflow: hold`" in text and "`hotfolder retry --code queue_full`" in text


def test_a_stations_cap_holds_only_that_stations_drops(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_pending=50, overflow="hold", **{"per_station.max_pending": 1})
    drop(rig, ["big/a", "big/b", "big/c", "small/a"])
    settle(rig)
    assert rig.queued() == ["big/a", "small/a"]
    assert [held(rig, n) for n in ["big/b", "big/c"]] == [3, 4]
    assert free_one(rig) == "big/a"
    look(rig)
    assert rig.queued() == ["small/a", "big/b"]
    assert held(rig, "big/c") == 3
    assert files_under(rig.layout.failed) == []


def test_drops_held_ahead_never_starve_a_newer_drop_of_its_tick(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_pending=50, overflow="hold", **{"per_station.max_pending": 1})
    # A budget spent by the first decision of each tick: the held drops, oldest and first
    # in every tick, must not be that decision once they are held.
    rig.intake = Intake(rig.layout, rig.config, rig.jobs, clock=rig.clock, tick_budget_seconds=0)
    drop(rig, [f"big/{i}" for i in range(6)] + ["small/new"])
    rig.tick()
    rig.tick(2.5)
    for _ in range(20):
        rig.tick(0.1)
        if "small/new" in rig.queued():
            break
    assert rig.queued() == ["big/0", "small/new"]
    rig.board.publish(refresh=True)
    assert [held(rig, f"big/{i}") for i in range(1, 6)] == [3, 4, 5, 6, 7]


@pytest.mark.parametrize(("dispatch", "small", "big"), [("fifo", 4, 3), ("fair", 3, 4)])
def test_a_held_drops_position_follows_the_order_in_force(
    tmp_path: Path, dispatch: str, small: int, big: int
) -> None:
    rig = Rig(tmp_path, max_pending=2, overflow="hold", dispatch=dispatch)
    drop(rig, ["big/1", "big/2", "big/3", "small/1"])
    settle(rig)
    assert rig.queued() == ["big/1", "big/2"]
    # fair: big/3 was held first, so it joins the queue when big/1 starts and small/1 only
    # when big/2 does; then small/ takes its turn ahead of big/'s third.
    assert (held(rig, "small/1"), held(rig, "big/3")) == (small, big)
    # And so they start, one worker freeing room at a time.
    started = [free_one(rig) for _ in range(2)]
    look(rig)
    started += [free_one(rig) for _ in range(2)]
    order = {name: place for place, name in enumerate(started, start=1)}
    assert (order["small/1"], order["big/3"]) == (small, big)


def test_a_held_drop_deleted_or_cancelled_stops_being_held(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_pending=1, overflow="hold")
    drop(rig, ["q", "gone", "stop", "last"])
    settle(rig)
    assert held(rig, "last") == 4
    (rig.inbox / "gone.jpg").unlink()
    (rig.inbox / "gone.yaml").unlink()
    (rig.inbox / "STOP.cancel").write_text("")
    rig.intake.note(rig.inbox / "STOP.cancel")
    rig.tick(0.1)
    rig.tick(2.5)
    look(rig)
    assert not rig.layout.status_path("gone").exists()
    cancelled = status(rig, "stop")
    assert (cancelled["status"], cancelled["error_code"]) == ("cancelled", "cancelled")
    assert sorted(files_under(rig.layout.failed)) == ["stop.jpg", "stop.reason.txt", "stop.yaml"]
    assert "hotfolder retry stop" in (rig.layout.failed / "stop.reason.txt").read_text()
    assert held(rig, "last") == 2
    assert (read_json(rig.layout.queue_json) or {})["waiting_count"] == 1
    free_one(rig)
    rig.tick(0.1)
    assert rig.queued() == ["last"]
    free_one(rig)
    ok, message = retry_selection(rig.jobs, rig.config, rig.intake.layers, Selection(("stop",)))
    assert ok, message
    assert rig.queued() == ["stop"]


def test_a_cancel_file_that_settles_with_its_drop_cancels_it_once_held(tmp_path: Path) -> None:
    # As at start-up: a held drop and its cancel file, both already in inbox/, settle in the
    # same tick. The cancel waited for nothing, found no held drop yet ("d is waiting"), and
    # the drop was edited later (found by an operator-day test).
    rig = Rig(tmp_path, max_pending=1, overflow="hold")
    drop(rig, ["q", "d"])
    (rig.inbox / "d.cancel").write_text("")
    rig.intake.note(rig.inbox / "d.cancel")
    settle(rig)
    cancelled = status(rig, "d")
    assert (cancelled["status"], cancelled["error_code"]) == ("cancelled", "cancelled")
    assert sorted(files_under(rig.layout.failed)) == ["d.jpg", "d.reason.txt", "d.yaml"]
    assert files_under(rig.inbox) == []


def test_a_cancel_file_waits_for_a_drop_still_arriving(tmp_path: Path) -> None:
    # The image is there, its sidecar not yet: the cancel file waits for the drop to be
    # decided, then cancels the job it became.
    rig = Rig(tmp_path)
    image = make_image(rig.inbox / "late.jpg")
    rig.intake.note(image)
    (rig.inbox / "late.cancel").write_text("")
    rig.intake.note(rig.inbox / "late.cancel")
    settle(rig)
    assert status(rig, "late")["status"] == "waiting"
    assert (rig.inbox / "late.cancel").exists()
    assert not (rig.layout.failed / "late.cancel.reason.txt").exists()
    rig.intake.note(write_sidecar(rig.inbox / "late.yaml"))
    rig.tick(5)
    rig.tick(10)
    assert (status(rig, "late")["status"], rig.queued()) == ("cancelled", [])
    assert not (rig.inbox / "late.cancel").exists()


def test_held_drops_keep_their_names_and_order_across_a_restart(tmp_path: Path) -> None:
    before = Rig(tmp_path, max_pending=1, overflow="hold")
    drop(before, ["one", "two", "three"])
    settle(before)
    shown = {n: status(before, n)["job_id"] for n in ["two", "three"]}
    assert held(before, "three") == 3

    after = Rig(tmp_path, max_pending=1, overflow="hold")
    after.jobs.recover()
    assert after.queued() == ["one"]
    assert status(after, "three")["detail"] == FOR_ROOM  # the status file was kept meanwhile
    settle(after)
    assert {n: status(after, n)["job_id"] for n in ["two", "three"]} == shown
    assert (held(after, "two"), held(after, "three")) == (2, 3)
    free_one(after)
    after.tick(0.1)
    assert after.queued() == ["two"]
    free_one(after)
    after.tick(0.1)
    assert after.queued() == ["three"]


# --- end to end: `hotfolder run` as a subprocess ---


def drop_folder(folder: Path, count: int) -> list[str]:
    """`count` images into a folder whose `_defaults.yaml` makes each one a job."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "_defaults.yaml").write_text("instruction: Make the sky blue\n")
    names = [f"IMG_{i:02d}" for i in range(count)]
    for name in names:
        make_image(folder / f"{name}.jpg")
    return names


class Watching:
    """Polls the status files of some jobs: which completed, and whether any read as held."""

    def __init__(self, root: Path, names: list[str]) -> None:
        self.root = root
        self.names = names
        self.held: dict[str, int] = {}  # name -> a position it was held at

    def all_done(self) -> bool:
        done = 0
        for name in self.names:
            shown = read_json(self.root / "outbox" / f"{name}.status.json") or {}
            if shown.get("detail") == FOR_ROOM and isinstance(shown.get("position"), int):
                self.held[name] = shown["position"]
            done += shown.get("status") in ("completed", "failed", "cancelled")
        return done == len(self.names)

    def done(self) -> int:
        return sum(
            (read_json(self.root / "outbox" / f"{n}.status.json") or {}).get("status")
            == "completed"
            for n in self.names
        )


def assert_all_through(root: Path, names: list[str], folders: list[str]) -> None:
    """Every drop came back as a result under its own name; nothing went to failed/, and
    only the folders' `_defaults.yaml` stay in inbox/."""
    assert files_under(root / "failed") == []
    assert files_under(root / "inbox") == [f"{folder}/_defaults.yaml" for folder in folders]
    for name in names:
        shown = read_json(root / "outbox" / f"{name}.status.json") or {}
        assert shown.get("status") == "completed", shown
        assert shown["result_path"] == f"outbox/{name}.png"
        assert (root / shown["result_path"]).is_file()


@pytest.mark.slow
def test_a_burst_past_the_cap_all_comes_back_without_touching_failed(tmp_path: Path) -> None:
    write_config(tmp_path, max_pending=3, overflow="hold", editor={"delay_seconds": 0.3})
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        names = [f"shoot/{n}" for n in drop_folder(tmp_path / "inbox" / "shoot", 12)]
        watching = Watching(tmp_path, names)
        wait_for(watching.all_done, timeout=120, interval=0.05, what="12 results")
        assert service.stop() == 0, service.log()
    assert_all_through(tmp_path, names, ["shoot"])
    # While they waited, some read `waiting for room in the queue` with their position.
    assert watching.held, "no drop was seen held for room"
    # Behind the three queued jobs at first, then closer as room freed.
    assert max(watching.held.values()) >= 4 and min(watching.held.values()) >= 1, watching.held


@pytest.mark.slow
def test_a_stations_held_drops_come_through_a_restart(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        max_pending=50,
        overflow="hold",
        per_station={"max_pending": 2},
        editor={"delay_seconds": 0.5},
    )
    names = [f"a/{n}" for n in drop_folder(tmp_path / "inbox" / "a", 8)]
    names += [f"b/{n}" for n in drop_folder(tmp_path / "inbox" / "b", 1)]
    watching = Watching(tmp_path, names)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        # Stop while a/ still has drops held: the first job is done, most wait in inbox/.
        wait_for(lambda: watching.all_done() or watching.done() >= 1, timeout=120)
        assert watching.held, "no drop of a/ was seen held for room"
        assert service.stop() == 0, service.log()
    left = [
        n
        for n in names
        if (read_json(tmp_path / "outbox" / f"{n}.status.json") or {}).get("status") == "waiting"
    ]
    assert left, "every drop was through before the restart"
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        wait_for(watching.all_done, timeout=120, interval=0.05, what="9 results")
        assert service.stop() == 0, service.log()
    assert_all_through(tmp_path, names, ["a", "b"])


@pytest.mark.slow
def test_hotfolder_cancel_takes_a_held_drop_out_of_inbox(tmp_path: Path) -> None:
    write_config(tmp_path, max_pending=1, overflow="hold", editor={"delay_seconds": 1.0})
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        names = [f"shoot/{n}" for n in drop_folder(tmp_path / "inbox" / "shoot", 3)]
        last = names[-1]
        wait_for(lambda: (status_of(tmp_path, last) or {}).get("detail") == FOR_ROOM)
        result = hotfolder("cancel", last, "--root", str(tmp_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "cancelled" in result.stdout
        watching = Watching(tmp_path, names)
        wait_for(watching.all_done, timeout=120, what="every drop decided")
        assert service.stop() == 0, service.log()
    assert (status_of(tmp_path, last) or {}).get("status") == "cancelled"
    assert files_under(tmp_path / "failed") == [f"{last}.jpg", f"{last}.reason.txt"]
    assert watching.done() == 2


@pytest.mark.slow
def test_hotfolder_cancel_with_the_service_stopped_takes_a_held_drop_out_of_inbox(
    tmp_path: Path,
) -> None:
    write_config(tmp_path, max_pending=2, overflow="hold")
    names = [f"shoot/{n}" for n in drop_folder(tmp_path / "inbox" / "shoot", 4)]
    assert hotfolder("pause", "--root", str(tmp_path), cwd=tmp_path).returncode == 0
    result = hotfolder("run", "--once", "--root", str(tmp_path), cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    held = [n for n in names if (status_of(tmp_path, n) or {}).get("status") == "waiting"]
    assert len(held) == 2
    target, other = held[-1], held[0]
    shown = status_of(tmp_path, target) or {}
    assert shown.get("detail") == FOR_ROOM
    # Nothing runs: no tick has looked at inbox/, only the status left in outbox/ knows.
    result = hotfolder("cancel", target.upper(), "--root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{target} cancelled" in result.stdout
    after = status_of(tmp_path, target) or {}
    assert after.get("status") == "cancelled"
    assert after.get("job_id") == shown.get("job_id")
    assert files_under(tmp_path / "failed") == [f"{target}.jpg", f"{target}.reason.txt"]
    reason = (tmp_path / "failed" / f"{target}.reason.txt").read_text()
    assert "cancelled while it waited in inbox/ for room" in reason
    assert f"hotfolder retry {target}" in reason
    assert (status_of(tmp_path, other) or {}).get("status") == "waiting"
    assert (tmp_path / "inbox" / f"{other}.jpg").exists()
    # queue.json still counts the drop left waiting, and a queued job cancelled makes its
    # place: it was rewritten as if nothing waited (found by an operator-day test).
    assert (read_json(tmp_path / "outbox" / "queue.json") or {}).get("waiting_count") == 1
    queued = [n for n in names if (status_of(tmp_path, n) or {}).get("status") == "queued"]
    assert (status_of(tmp_path, other) or {}).get("position") == 3
    assert hotfolder("cancel", queued[0], "--root", str(tmp_path), cwd=tmp_path).returncode == 0
    assert (status_of(tmp_path, other) or {}).get("position") == 2
    assert (read_json(tmp_path / "outbox" / "queue.json") or {}).get("waiting_count") == 1
    # A name that is nothing at all is still refused.
    result = hotfolder("cancel", "shoot/nothing", "--root", str(tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    assert len(files_under(tmp_path / "failed")) == 4  # the two cancelled, nothing more


@pytest.mark.slow
def test_run_once_drains_held_drops_too(tmp_path: Path) -> None:
    write_config(tmp_path, max_pending=2, overflow="hold")
    names = [f"shoot/{n}" for n in drop_folder(tmp_path / "inbox" / "shoot", 5)]
    result = hotfolder("run", "--once", "--root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert_all_through(tmp_path, names, ["shoot"])


@pytest.mark.slow
def test_run_once_on_a_paused_service_leaves_held_drops_waiting(tmp_path: Path) -> None:
    write_config(tmp_path, max_pending=2, overflow="hold")
    names = [f"shoot/{n}" for n in drop_folder(tmp_path / "inbox" / "shoot", 4)]
    assert hotfolder("pause", "--root", str(tmp_path), cwd=tmp_path).returncode == 0
    # Nothing will make room: the burst run stops instead of waiting for it forever.
    result = hotfolder("run", "--once", "--root", str(tmp_path), cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    shown = [(status_of(tmp_path, n) or {}).get("status") for n in names]
    assert sorted(shown) == ["queued", "queued", "waiting", "waiting"]
    assert files_under(tmp_path / "failed") == []
