"""Drops seen but not admitted read `waiting` with what for, under the name they keep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import make_image, read_json, write_sidecar
from test_intake import Rig

from hotfolder.arrivals import FOR_DISK
from hotfolder.intake import Intake
from hotfolder.pairing import COPYING, FOR_IMAGE, FOR_SIDECAR, MAYBE_SIDECAR


def status(rig: Rig, name: str) -> dict[str, Any] | None:
    return read_json(rig.layout.status_path(name))


def test_a_drop_reads_waiting_until_admitted_under_one_name_and_id(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    make_image(rig.inbox / "st" / "a.jpg")
    rig.tick()
    first = status(rig, "st/a")
    assert first is not None
    assert (first["status"], first["detail"]) == ("waiting", COPYING)
    assert first["source"] == "inbox/st/a.jpg"
    assert first["position"] is None and first["attempts"] == 0
    rig.tick(2.5)
    assert (status(rig, "st/a") or {})["detail"] == FOR_SIDECAR
    queue = read_json(rig.layout.queue_json)
    assert queue is not None and queue["waiting_count"] == 1 and queue["queued_count"] == 0
    rig.intake.note(write_sidecar(rig.inbox / "st" / "a.yaml"))
    rig.tick(0.1)
    rig.tick(2.5)
    admitted = status(rig, "st/a")
    assert admitted is not None and admitted["status"] == "queued"
    assert (admitted["job_id"], admitted["created_at"]) == (first["job_id"], first["created_at"])
    assert rig.queued() == ["st/a"]
    assert (read_json(rig.layout.queue_json) or {})["waiting_count"] == 0


def test_a_lone_sidecar_waits_for_its_image_then_is_refused_under_its_name(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, sidecar_wait_seconds=5)
    write_sidecar(rig.inbox / "s.yaml")
    rig.tick()
    rig.tick(2.5)
    waiting = status(rig, "s")
    assert waiting is not None and waiting["detail"] == FOR_IMAGE
    rig.tick(6)
    refused = status(rig, "s")
    assert refused is not None and refused["status"] == "failed"
    assert refused["error_code"] == "no_image" and refused["job_id"] == waiting["job_id"]


def test_an_image_that_defaults_make_a_job_waits_a_moment_for_a_sidecar(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.inbox / "_defaults.yaml").write_text("instruction: from the folder\n")
    make_image(rig.inbox / "d.jpg")
    rig.tick()
    rig.tick(2.1)
    assert (status(rig, "d") or {})["detail"] == MAYBE_SIDECAR
    rig.tick(2.1)
    assert rig.queued() == ["d"]


def test_a_waiting_drop_that_leaves_inbox_takes_its_status_with_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    image = make_image(rig.inbox / "sub" / "gone.jpg")
    rig.tick()
    assert status(rig, "sub/gone") is not None
    image.unlink()
    rig.tick(0.5)
    assert not rig.layout.status_path("sub/gone").exists()
    assert not (rig.layout.outbox / "sub").exists()
    assert (read_json(rig.layout.queue_json) or {})["waiting_count"] == 0


def test_a_name_held_by_an_earlier_job_gives_the_waiting_drop_the_next_one(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path)
    make_image(rig.layout.archive / "shot.jpg")  # an earlier job named `shot`
    make_image(rig.inbox / "shot.jpg")
    rig.tick()
    waiting = status(rig, "shot~2")
    assert waiting is not None and waiting["status"] == "waiting"
    rig.intake.note(write_sidecar(rig.inbox / "shot.yaml"))
    rig.tick(2.5)
    rig.tick(2.5)
    assert rig.queued() == ["shot~2"]  # the name it was shown with, not shot~3
    assert (status(rig, "shot~2") or {})["job_id"] == waiting["job_id"]


def test_waiting_statuses_of_a_stopped_service_are_taken_back_or_removed(
    tmp_path: Path,
) -> None:
    before = Rig(tmp_path)
    make_image(before.inbox / "kept.jpg")
    make_image(before.inbox / "left.jpg")
    before.tick()
    kept = status(before, "kept")
    assert kept is not None and status(before, "left") is not None
    (before.inbox / "left.jpg").unlink()  # removed while the service was down

    after = Rig(tmp_path)
    after.board.load_finished()
    after.tick()
    assert not after.layout.status_path("left").exists()
    after.intake.note(write_sidecar(after.inbox / "kept.yaml"))
    after.tick(2.5)
    after.tick(2.5)
    assert after.queued() == ["kept"]
    assert (status(after, "kept") or {})["job_id"] == kept["job_id"]


def test_a_ready_pair_held_for_disk_space_says_so(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.intake = Intake(
        rig.layout, rig.config, rig.jobs, clock=rig.clock, hold=lambda: "the disk is full"
    )
    make_image(rig.inbox / "h.jpg")
    write_sidecar(rig.inbox / "h.yaml")
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == []
    assert (status(rig, "h") or {})["detail"] == FOR_DISK


def test_a_waiting_drop_keeps_the_letter_case_it_was_dropped_with(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    make_image(rig.inbox / "St-1" / "IMG_0042.JPG")
    rig.tick()
    assert (status(rig, "St-1/IMG_0042") or {}).get("status") == "waiting"
    rig.intake.note(write_sidecar(rig.inbox / "St-1" / "img_0042.yaml"))
    rig.tick(2.5)
    rig.tick(2.5)
    assert rig.queued() == ["St-1/IMG_0042"]
