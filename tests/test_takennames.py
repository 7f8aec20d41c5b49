"""Intake's names taken: the same answers as asking the disk, with the disk asked only for
names some file may belong to (issue 14: a burst spent half of intake's time in lstat)."""

from __future__ import annotations

import os
from pathlib import Path

from support import make_image
from test_spool import manifest_for

from hotfolder.layout import Layout
from hotfolder.spool import Spool
from hotfolder.takennames import TakenNames


class Counted(Layout):
    """A layout that counts how often the disk is asked about a name."""

    asked: int = 0

    def name_taken(self, name: str) -> bool:
        object.__setattr__(self, "asked", self.asked + 1)
        return super().name_taken(name)


def rig(tmp_path: Path) -> tuple[Counted, Spool, TakenNames]:
    layout = Counted(tmp_path)
    layout.create()
    spool = Spool(layout)
    return layout, spool, TakenNames(layout, spool.names)


def test_the_answers_are_the_disks_in_every_folder_and_subfolder(tmp_path: Path) -> None:
    layout, _spool, names = rig(tmp_path)
    files = [
        layout.archive / "s" / "IMG.JPG",
        layout.outbox / "s" / "IMG~2.status.json",
        layout.failed / "s" / "IMG.v2.jpg",
        layout.pending / "p.yaml",
        layout.processing / "deep" / "er" / "q.png",
        layout.manifests(layout.pending) / "m.job.json",
        layout.outbox / "r.webp",
        layout.failed / "odd.Jpg",  # an ending in neither case the disk is asked for
    ]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    candidates = [
        *("s/IMG", "s/IMG~2", "s/IMG~3", "s/IMG.v2", "s/IMG.v2~2", "s/img", "p", "m"),
        *("deep/er/q", "deep/q", "q", "r", "odd", "new", "s/new", "x/y/z", "IMG"),
    ]
    for name in candidates:
        assert names.taken(name) == layout.name_taken(name), name
    assert layout.unique_name("s/IMG", taken=names.taken) == "s/IMG~3"
    assert names.carried("s/IMG", {"s/IMG~3"}) == ("s/IMG~4", True)


def test_a_name_no_file_can_belong_to_is_answered_without_the_disk(tmp_path: Path) -> None:
    layout, _spool, names = rig(tmp_path)
    make_image(layout.archive / "st" / "IMG_0001.jpg")
    assert names.taken("st/IMG_0001")
    asked = layout.asked
    for index in range(2, 200):
        assert names.carried(f"st/IMG_{index:04d}", set()) == (f"st/IMG_{index:04d}", True)
    assert layout.asked == asked
    # One that a file may belong to is asked about, and is as taken as the disk says.
    assert names.carried("st/IMG_0001", set()) == ("st/IMG_0001~2", True)
    assert layout.asked > asked


def test_a_name_handed_out_stays_taken_once_its_files_appear(tmp_path: Path) -> None:
    layout, _spool, names = rig(tmp_path)
    name, _carried = names.carried("a/b", set())
    assert name == "a/b"
    # Its job's files appear after the folder was listed: only the service writes there,
    # and only under names it handed out.
    make_image(layout.archive / "a" / "b.jpg")
    assert names.carried("a/b", set()) == ("a/b~2", True)


def test_a_queued_job_is_known_wherever_its_files_are_when_the_folders_are_listed(
    tmp_path: Path,
) -> None:
    layout, spool, names = rig(tmp_path)
    spool.admit(manifest_for(spool, layout, "st/j"))
    # The folders are listed one after another while a worker moves the job's files (a
    # claim, a finish): they may be in none of them when each is listed. Here, away.
    away = tmp_path / "away"
    away.mkdir()
    moved = [
        layout.pending / "st" / "j.jpg",
        layout.manifests(layout.pending) / "st" / "j.job.json",
    ]
    for path in moved:
        os.rename(path, away / path.name)
    assert spool.names() == ["st/j"]
    assert names.taken("st/other") is False  # lists st/ in every folder
    (layout.archive / "st").mkdir()
    os.rename(away / "j.jpg", layout.archive / "st" / "j.jpg")
    assert names.taken("st/j")
    assert names.carried("st/j", set()) == ("st/j~2", True)


def test_a_name_whose_files_are_gone_is_free_again(tmp_path: Path) -> None:
    layout, _spool, names = rig(tmp_path)
    result = layout.outbox / "gone.png"
    result.write_bytes(b"")
    assert names.taken("gone")
    result.unlink()  # the operator cleans outbox/
    assert names.carried("gone", set()) == ("gone", True)


def test_a_name_in_a_path_that_is_a_file_is_asked_about(tmp_path: Path) -> None:
    layout, _spool, names = rig(tmp_path)
    (layout.failed / "plain").write_bytes(b"")  # a file where a folder would be
    asked = layout.asked
    assert names.taken("plain/x") is False
    assert layout.asked == asked + 1


def test_names_differing_only_in_case_or_accents_are_checked_on_disk(tmp_path: Path) -> None:
    layout, _spool, names = rig(tmp_path)
    for file_name in ("Cafe\u0301.jpg", "IMG_1.jpg"):
        (layout.archive / file_name).write_bytes(b"")
    asked = layout.asked
    # A case-insensitive or normalising share would take these for the files above: never
    # answered from memory alone.
    for name in ("caf\u00e9", "CAFE", "img_1", "\u0131mg_1"):
        names.taken(name)
    assert layout.asked == asked + 4
