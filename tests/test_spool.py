"""The queue on disk: order kept across restarts, interrupted moves finished on load."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from support import files_under, make_image, record_fsyncs

from hotfolder import fsops, thumbs
from hotfolder.layout import Layout, new_job_id
from hotfolder.spool import Ending, JobState, Manifest, Spool


def manifest_for(spool: Spool, layout: Layout, name: str, priority: str = "normal") -> Manifest:
    image = make_image(layout.inbox / f"{name}.jpg")
    return Manifest(
        job_id=new_job_id(),
        name=name,
        seq=spool.next_seq(),
        priority=priority,  # type: ignore[arg-type]
        created_at="2026-11-29T00:00:00.000Z",
        source=f"inbox/{name}.jpg",
        image=f"{name.rpartition('/')[2]}.jpg",
        inbox_image=layout.relative(image),
        spec={"instruction": "x", "preset": "qwen-4step"},
        seed=1,
    )


def test_order_is_fifo_with_high_first_and_survives_a_restart(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    for name, priority in (("a", "normal"), ("b", "high"), ("c", "normal"), ("d", "high")):
        spool.admit(manifest_for(spool, layout, name, priority))
    assert [m.name for m in spool.queued()] == ["b", "d", "a", "c"]
    again = Spool(layout)
    again.load()
    assert [m.name for m in again.queued()] == ["b", "d", "a", "c"]
    # New admissions after a restart still go behind the old ones.
    again.admit(manifest_for(again, layout, "e", "high"))
    assert [m.name for m in again.queued()] == ["b", "d", "e", "a", "c"]


def test_claim_requeue_puts_the_job_back_at_the_head(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    for name in ("a", "b"):
        spool.admit(manifest_for(spool, layout, name))
    spool.admit(manifest_for(spool, layout, "h", "high"))
    claimed = spool.claim({"state": JobState.processing, "worker": "w"})
    assert claimed is not None
    spool.record_claim(claimed.name)
    assert claimed is not None
    assert claimed.name == "h"
    assert files_under(layout.processing) == ["h.jpg"]
    assert files_under(layout.manifests(layout.processing)) == ["h.job.json"]
    spool.requeue(claimed)
    assert [m.name for m in spool.queued()] == ["h", "a", "b"]
    assert files_under(layout.processing) == []


def test_an_admission_cut_short_is_finished_on_load(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    manifest = manifest_for(spool, layout, "cut")
    # A crash right after the manifest was written, before the image moved.
    fsops.write_atomic(
        layout.manifests(layout.pending) / "cut.job.json", manifest.model_dump_json().encode()
    )
    assert (layout.inbox / "cut.jpg").exists()
    again = Spool(layout)
    again.load()
    assert [m.name for m in again.queued()] == ["cut"]
    assert files_under(layout.pending) == ["cut.jpg"]
    assert files_under(layout.inbox) == []


def test_a_new_drop_of_a_queued_name_is_never_taken_for_the_queued_job(tmp_path: Path) -> None:
    # A station drops A again while the first A is queued (it waits in inbox/ for room, or
    # for its turn to be admitted as A~2). The claim, a put back and a restart after a
    # kill -9 each move the first A's own files, never the new one (found by a chaos test).
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    spool.admit(manifest_for(spool, layout, "A"))
    first = (layout.pending / "A.jpg").read_bytes()
    make_image(layout.inbox / "A.jpg", color=(0, 0, 255))
    second = (layout.inbox / "A.jpg").read_bytes()
    assert first != second
    claimed = spool.claim({"state": JobState.processing, "worker": "w"})
    assert claimed is not None
    spool.record_claim(claimed.name)
    assert (layout.processing / "A.jpg").read_bytes() == first
    assert (layout.inbox / "A.jpg").read_bytes() == second
    # Killed while processing; on the next start the job is where it was, the drop too.
    again = Spool(layout)
    again.load()
    assert [m.name for m in again.processing()] == ["A"]
    again.requeue(again.processing()[0])
    assert (layout.pending / "A.jpg").read_bytes() == first
    assert (layout.inbox / "A.jpg").read_bytes() == second


def test_a_claim_cut_short_is_finished_on_load(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    spool.admit(manifest_for(spool, layout, "half"))
    # The manifest moved to processing/, the image did not.
    fsops.move(
        layout.manifests(layout.pending) / "half.job.json",
        layout.manifests(layout.processing) / "half.job.json",
    )
    again = Spool(layout)
    again.load()
    assert [m.name for m in again.processing()] == ["half"]
    assert files_under(layout.processing) == ["half.jpg"]


def completed_claim(
    tmp_path: Path, name: str, *, recorded: bool = True
) -> tuple[Layout, Spool, Manifest]:
    """A spool holding one job `name`, claimed (and the claim on disk if `recorded`), and
    that job's manifest in its final state, completed, for `Spool.finish`."""
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    spool.admit(manifest_for(spool, layout, name))
    claimed = spool.claim({"state": JobState.processing, "worker": "w"})
    assert claimed is not None
    if recorded:
        spool.record_claim(claimed.name)
    return layout, spool, claimed.model_copy(update={"state": JobState.completed})


def test_finish_moves_inputs_and_removes_the_manifest_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout, spool, done = completed_claim(tmp_path, "sub/x")
    result, status = layout.outbox / "sub" / "x.png", layout.outbox / "sub" / "x.status.json"
    manifest = spool.manifest_path(layout.processing, "sub/x")
    seen: list[tuple[str, Path]] = []
    real = fsops._mutation
    monkeypatch.setattr(
        fsops, "_mutation", lambda kind, path: (seen.append((kind, path)), real(kind, path))
    )
    spool.finish(done, layout.archive, Ending(results=[(result, b"png")], status=(status, b"{}")))
    # One ending: every file written under a temporary name first, then put in place in the
    # order a crash must find them: result, final state, inputs, status, manifest gone.
    assert [step for step in seen if step[0] != "write"] == [
        ("replace", result),
        ("replace", manifest),
        ("move", layout.archive / "sub" / "x.jpg"),
        ("replace", status),
        ("remove", manifest),
    ]
    assert {path for kind, path in seen if kind == "write"} == {result, manifest, status}
    assert files_under(layout.manifests(layout.processing)) == []
    assert files_under(layout.archive) == ["sub/x.jpg"]
    assert files_under(layout.processing) == []
    assert result.read_bytes() == b"png" and status.read_bytes() == b"{}"
    assert spool.find("sub/x") is None


def test_a_thumbnail_that_cannot_be_written_never_holds_up_the_ending(tmp_path: Path) -> None:
    layout, spool, done = completed_claim(tmp_path, "x", recorded=False)
    (layout.outbox / ".thumbs").write_bytes(b"not a folder")  # so nothing can go under it
    result, status = layout.outbox / "x.png", layout.outbox / "x.status.json"
    picture = layout.outbox / ".thumbs" / "x.before.jpg"
    ending = Ending(
        results=[(result, b"png")], pictures=[(picture, b"jpg")], status=(status, b"{}")
    )
    spool.finish(done, layout.archive, ending)
    assert result.read_bytes() == b"png" and status.read_bytes() == b"{}"
    assert files_under(layout.archive) == ["x.jpg"] and spool.find("x") is None
    assert sorted(p.name for p in layout.outbox.iterdir()) == [".thumbs", "x.png", "x.status.json"]


def test_an_ending_cut_short_after_the_final_state_is_finished_by_replaying_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout, spool, done = completed_claim(tmp_path, "x")
    real = fsops._mutation

    def refuse_moves(kind: str, path: Path) -> None:
        if kind == "move":
            raise OSError(errno.EROFS, "read-only", str(path))
        real(kind, path)

    monkeypatch.setattr(fsops, "_mutation", refuse_moves)
    with pytest.raises(OSError):
        spool.finish(done, layout.archive, Ending())
    # The final state reached the disk and memory before the refused move; nothing was lost.
    assert [m.name for m in spool.unfinished()] == ["x"]
    assert files_under(layout.processing) == ["x.jpg"]
    assert not [
        p for p in layout.manifests(layout.processing).iterdir() if fsops.is_temp_name(p.name)
    ]
    again = Spool(layout)
    again.load()
    assert [m.state for m in again.unfinished()] == [JobState.completed]
    monkeypatch.setattr(fsops, "_mutation", real)
    again.finish(again.unfinished()[0], layout.archive, Ending())
    assert files_under(layout.archive) == ["x.jpg"] and again.find("x") is None


def test_unique_names_skip_every_folder_that_holds_the_name(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    assert layout.unique_name("s/IMG") == "s/IMG"
    (layout.archive / "s").mkdir()
    (layout.archive / "s" / "IMG.JPG").write_bytes(b"")
    assert layout.unique_name("s/IMG") == "s/IMG~2"
    (layout.outbox / "s").mkdir()
    (layout.outbox / "s" / "IMG~2.status.json").write_text("{}")
    assert layout.unique_name("s/IMG") == "s/IMG~3"
    # A different job whose name merely starts the same does not count.
    (layout.failed / "s").mkdir()
    (layout.failed / "s" / "IMG.v2.jpg").write_bytes(b"")
    assert layout.unique_name("s/IMG.v2") == "s/IMG.v2~2"
    assert layout.unique_name("s/IMG", reserved={"s/IMG~3"}) == "s/IMG~4"


def test_a_batch_of_admissions_is_counted_at_once_and_queued_once_written(
    tmp_path: Path,
) -> None:
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    spool.admit(manifest_for(spool, layout, "old"))
    batch = [manifest_for(spool, layout, name) for name in ("a", "sub/b", "c")]
    for manifest in batch:
        spool.admit(manifest, later=True)
    # Counted against the caps and its names taken, but nothing else sees the batch yet.
    assert spool.pending_count() == 4
    assert spool.station_count("sub") == 1
    assert spool.admitting() == {"a", "sub/b", "c"}
    assert [m.name for m in spool.queued()] == ["old"]
    assert spool.find("a") is None
    assert files_under(layout.pending) == ["old.jpg"]
    first = spool.claim({"state": JobState.processing, "worker": "w"})
    assert first is not None and first.name == "old"
    spool.record_claim(first.name)
    assert spool.claim({"state": JobState.processing, "worker": "w"}) is None
    written, error = spool.write_admitted()
    assert error is None
    assert [m.name for m in written] == ["a", "sub/b", "c"]
    assert spool.admitting() == set()
    assert spool.pending_count() == 3
    assert [m.name for m in spool.queued()] == ["a", "sub/b", "c"]
    assert files_under(layout.pending) == ["a.jpg", "c.jpg", "sub/b.jpg"]
    assert files_under(layout.manifests(layout.pending)) == [
        "a.job.json",
        "c.job.json",
        "sub/b.job.json",
    ]
    assert files_under(layout.inbox) == []
    assert spool.write_admitted() == ([], None)


def test_a_batch_cut_short_after_its_manifests_is_finished_on_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash between a batch's manifests and its files' moves: the next start moves them."""
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    for name in ("a", "sub/b"):
        spool.admit(manifest_for(spool, layout, name), later=True)

    real = fsops._mutation

    def crash_at_the_first_move(kind: str, path: Path) -> None:
        if kind == "move":
            raise SystemExit("crash")
        real(kind, path)

    monkeypatch.setattr(fsops, "_mutation", crash_at_the_first_move)
    with pytest.raises(SystemExit):
        spool.write_admitted()
    monkeypatch.undo()
    assert files_under(layout.pending) == []
    again = Spool(layout)
    again.load()
    assert [m.name for m in again.queued()] == ["a", "sub/b"]
    assert files_under(layout.pending) == ["a.jpg", "sub/b.jpg"]
    assert files_under(layout.inbox) == []


def test_a_batch_the_disk_refuses_keeps_only_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    batch = [manifest_for(spool, layout, name) for name in ("a", "b")]
    for manifest in batch:
        spool.admit(manifest, later=True)
    real_replace = os.replace

    def full_disk_after_one(src: str, dst: str) -> None:
        if Path(dst).name == "b.job.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_disk_after_one)
    written, error = spool.write_admitted()
    monkeypatch.undo()
    assert isinstance(error, OSError)
    assert [m.name for m in written] == ["a"]
    assert [m.name for m in spool.queued()] == ["a"]
    assert spool.pending_count() == 1  # b is not admitted: intake tries it again
    assert files_under(layout.pending) == ["a.jpg"]
    assert files_under(layout.inbox) == ["b.jpg"]
    assert not list(tmp_path.rglob(".hf-*"))


def test_the_queued_count_follows_every_change_of_state(tmp_path: Path) -> None:
    """pending_count is kept as jobs come and go (read without the lock): it always equals
    a count of the queued jobs."""
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)

    def recount() -> int:
        return sum(1 for m in spool.queued())

    for name in ("a", "b", "c"):
        spool.admit(manifest_for(spool, layout, name))
    assert spool.pending_count() == recount() == 3
    claimed = spool.claim({"state": JobState.processing, "worker": "w"})
    assert claimed is not None
    assert spool.pending_count() == recount() == 2
    spool.requeue(claimed)
    assert spool.pending_count() == recount() == 3
    queued = spool.find("b")
    assert queued is not None
    failed = queued.model_copy(update={"state": JobState.failed})
    spool.update(failed)
    assert spool.pending_count() == recount() == 2
    spool.finish(failed, layout.failed, Ending())
    assert spool.pending_count() == recount() == 2
    again = Spool(layout)
    again.load()
    assert again.pending_count() == 2
    assert again.next_seq() > max(m.seq for m in again.queued())


def test_an_ending_waits_on_the_disk_for_its_result_and_status_not_its_thumbnails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout, spool, done = completed_claim(tmp_path, "x", recorded=False)
    synced = record_fsyncs(monkeypatch)
    result, status = layout.outbox / "x.png", layout.outbox / "x.status.json"
    pictures = [(layout.thumb_path("x", kind), b"jpg") for kind in ("before", "after")]
    spool.finish(done, layout.archive, Ending([(result, b"png")], pictures, None, (status, b"{}")))
    assert all(path.read_bytes() == b"jpg" for path, _data in pictures)
    assert any("x.png" in path for path in synced) and any("x.status" in path for path in synced)
    assert not any(".thumbs" in path for path in synced)
    # A thumbnail a power cut left empty is no thumbnail: the page shows none, not a broken one.
    assert thumbs.present(layout, "x") == (True, True)
    layout.thumb_path("x", "after").write_bytes(b"")
    assert thumbs.present(layout, "x") == (True, False)
