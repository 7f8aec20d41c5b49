"""`hotfolder retry NAME... | FOLDER/ | --code CODE | --all` (SPEC: "Waiting, overflow and retries")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import files_under, hotfolder, make_image, write_config, write_sidecar
from test_intake import Rig

from hotfolder.retries import Selection, failed_jobs, retry_selection


def burst(rig: Rig, count: int, folder: str = "burst") -> list[str]:
    """Drop `count` pairs with increasing mtimes into inbox/FOLDER; return their names."""
    names = []
    for i in range(count):
        image = make_image(rig.inbox / folder / f"IMG_{i:02}.JPG")
        write_sidecar(rig.inbox / folder / f"IMG_{i:02}.yaml")
        os.utime(image, (1_700_000_000 + i, 1_700_000_000 + i))
        names.append(f"{folder}/IMG_{i:02}")
    rig.tick(rig.config.rescan_interval_seconds)  # a rescan finds them
    rig.tick(2.5)
    return names


def again(rig: Rig, *targets: str, code: str | None = None, every: bool = False, cap: int = 0):
    config = rig.config.model_copy(update={"max_pending": cap}) if cap else rig.config
    selection = Selection(targets=targets, code=code, every=every)
    return retry_selection(rig.jobs, config, rig.intake.layers, selection)


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path, max_pending=2)


def test_retry_by_code_oldest_first_what_does_not_fit_stays_and_is_reported(rig: Rig) -> None:
    names = burst(rig, 6)
    assert rig.queued() == names[:2]
    assert [j.name for j in failed_jobs(rig.layout)] == names[2:]
    ok, message = again(rig, code="queue_full", cap=4)
    assert not ok
    assert rig.queued() == names[:4]  # original names, no ~2, oldest first
    assert message.splitlines() == [
        "2 back in the queue, oldest first: burst/IMG_02, burst/IMG_03",
        "2 did not fit under max_pending (4) and stay in failed/: burst/IMG_04, burst/IMG_05; "
        "run `hotfolder retry --code queue_full` again once the queue has room",
    ]
    assert files_under(rig.layout.failed / "burst") == [
        "IMG_04.JPG",
        "IMG_04.reason.txt",
        "IMG_04.yaml",
        "IMG_05.JPG",
        "IMG_05.reason.txt",
        "IMG_05.yaml",
    ]
    ok, message = again(rig, "burst/", cap=10)
    assert ok, message
    assert rig.queued() == names
    assert files_under(rig.layout.failed) == []


@pytest.mark.parametrize(
    "target",
    [
        "burst/IMG_03",
        "burst/IMG_03.JPG",
        "burst/IMG_03.yaml",
        "burst/img_03.jpg",
        "failed/burst/IMG_03",
    ],
)
def test_retry_a_name_with_or_without_its_extension(rig: Rig, target: str) -> None:
    names = burst(rig, 4)
    ok, message = again(rig, target, cap=3)
    assert ok, message
    assert message == "1 back in the queue, oldest first: burst/IMG_03"
    assert rig.queued() == [names[0], names[1], names[3]]


def test_retry_all_reports_names_that_match_nothing(rig: Rig) -> None:
    names = burst(rig, 3, folder="a") + burst(rig, 1, folder="b")
    ok, message = again(rig, "a/IMG_02", "nope", "c/", cap=10)
    assert not ok
    assert "1 back in the queue, oldest first: a/IMG_02" in message
    assert "no failed or cancelled job in failed/ matches nope, c/" in message
    ok, message = again(rig, every=True, cap=10)
    assert ok, message
    assert sorted(rig.queued()) == sorted(names)


def test_a_job_that_still_fails_its_checks_stays_with_the_reason(rig: Rig) -> None:
    burst(rig, 3)
    write_sidecar(rig.layout.failed / "burst" / "IMG_02.yaml", instruction=5)
    ok, message = again(rig, "burst/IMG_02", cap=5)
    assert not ok
    assert "burst/IMG_02 cannot be retried" in message and "instruction" in message
    assert (rig.layout.failed / "burst" / "IMG_02.JPG").exists()


def test_nothing_to_retry_says_so(rig: Rig) -> None:
    # Done, not failed: a script that retries `--all` every few minutes finds nothing.
    ok, message = again(rig, code="crashed")
    assert ok
    assert message == "no failed or cancelled job with code crashed to retry; nothing changed"
    ok, message = again(rig, every=True)
    assert ok
    assert message == "no failed or cancelled job to retry; nothing changed"
    # A name that is nothing is still a failure.
    ok, message = again(rig, "gone")
    assert not ok
    assert "no failed or cancelled job in failed/ matches gone" in message


def test_an_unmatched_cancel_reason_is_not_a_job(rig: Rig) -> None:
    (rig.inbox / "x.cancel").write_text("")
    rig.tick()
    rig.tick(2.5)
    assert (rig.layout.failed / "x.cancel.reason.txt").exists()
    assert failed_jobs(rig.layout) == []


@pytest.mark.slow
def test_the_retry_command_line(tmp_path: Path) -> None:
    write_config(tmp_path, max_pending=1)
    (tmp_path / ".hotfolder").mkdir(exist_ok=True)
    (tmp_path / ".hotfolder" / "PAUSE").write_text("")  # nothing leaves the queue
    for i in range(3):
        make_image(tmp_path / "inbox" / "st" / f"p{i}.jpg")
        write_sidecar(tmp_path / "inbox" / "st" / f"p{i}.yaml")
    assert hotfolder("run", "--once", "--root", str(tmp_path), cwd=tmp_path).returncode == 0
    root = ["--root", str(tmp_path)]
    for bad in ([], ["--all", "st/p1"], ["--code", "bogus"]):
        result = hotfolder("retry", *bad, *root, cwd=tmp_path)
        assert result.returncode == 2, bad
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    result = hotfolder("retry", "st/", *root, cwd=tmp_path)
    assert result.returncode == 1
    assert "did not fit under max_pending (1)" in result.stderr
    write_config(tmp_path, max_pending=3)
    result = hotfolder("retry", "--code", "queue_full", *root, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 back in the queue" in result.stdout
    assert files_under(tmp_path / "failed") == []


def test_jobs_refused_together_come_back_in_the_order_people_number_them(rig: Rig) -> None:
    # k9 and k10 are refused in one tick (one created_at): their names decide, as people
    # number them (k9 first), not as a string sorts them (k10 first).
    for n in (7, 8, 9, 10):
        image = make_image(rig.inbox / f"k{n}.jpg")
        write_sidecar(rig.inbox / f"k{n}.yaml")
        os.utime(image, (1_700_000_000 + n, 1_700_000_000 + n))
    rig.tick(rig.config.rescan_interval_seconds)
    rig.tick(2.5)
    assert rig.queued() == ["k7", "k8"]
    ok, message = again(rig, code="queue_full", cap=10)
    assert ok, message
    assert message == "2 back in the queue, oldest first: k9, k10"
    assert rig.queued() == ["k7", "k8", "k9", "k10"]
