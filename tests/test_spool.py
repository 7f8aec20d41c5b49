"""The queue on disk: order kept across restarts, interrupted moves finished on load."""

from __future__ import annotations

from pathlib import Path

from support import files_under, make_image

from hotfolder import fsops
from hotfolder.layout import Layout, new_job_id
from hotfolder.spool import JobState, Manifest, Spool


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


def test_finish_moves_inputs_and_removes_the_manifest_last(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    spool.admit(manifest_for(spool, layout, "sub/x"))
    claimed = spool.claim({"state": JobState.processing, "worker": "w"})
    assert claimed is not None
    spool.record_claim(claimed.name)
    assert claimed is not None
    seen: list[list[str]] = []
    done = claimed.model_copy(update={"state": JobState.completed})
    manifests = layout.manifests(layout.processing)
    spool.finish(done, layout.archive, announce=lambda: seen.append(files_under(manifests)))
    assert seen == [["sub/x.job.json"]]  # the manifest is still there when the status is written
    assert files_under(manifests) == []
    assert files_under(layout.archive) == ["sub/x.jpg"]
    assert files_under(layout.processing) == []


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
