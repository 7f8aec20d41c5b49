"""Intake driven tick by tick with an injected clock: settle, pair, defaults, junk, rejections."""

from __future__ import annotations

import errno
import io
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support import files_under, jobs_on, make_image, read_json, write_sidecar

from hotfolder import fsops, images, probes
from hotfolder.config import Config, Limits, load_config
from hotfolder.decoded import KEEP_IMAGES, Decoded
from hotfolder.dispatch import make_ticket
from hotfolder.intake import KEEP_DECODED_BELOW, Intake
from hotfolder.layout import Layout
from hotfolder.names import is_ignored


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Rig:
    def __init__(self, root: Path, **overrides: object) -> None:
        settings: dict[str, object] = {
            "settle_seconds": 2,
            "sidecar_wait_seconds": 30,
            "editor.name": "identity",
        }
        settings.update(overrides)
        self.config: Config = load_config(root=root, overrides=settings)
        self.layout = Layout(self.config.root_path)
        self.layout.create()
        self.clock = Clock()
        self.jobs = jobs_on(self.layout, self.config, self.clock)
        self.spool = self.jobs.spool
        self.board = self.jobs.board
        self.cancelled: list[str] = []
        self.intake = Intake(
            self.layout,
            self.config,
            self.jobs,
            clock=self.clock,
            on_cancel=self._cancel,
        )
        self.inbox = self.layout.inbox

    def _cancel(self, name: str) -> tuple[bool, str]:
        self.cancelled.append(name)
        return self.jobs.cancel(name)

    def tick(self, advance: float = 0.0) -> None:
        self.clock.advance(advance)
        self.intake.tick()
        self.board.publish()  # what the service's publisher thread does

    def queued(self) -> list[str]:
        return [m.name for m in self.spool.queued()]

    def drop(self, stem: str, extension: str = ".jpg") -> None:
        """An image and its sidecar dropped, and their events noted as the watcher would."""
        make_image(self.inbox / f"{stem}{extension}")
        write_sidecar(self.inbox / f"{stem}.yaml")
        self.intake.note(self.inbox / f"{stem}{extension}")
        self.intake.note(self.inbox / f"{stem}.yaml")

    def reason(self, name: str) -> str:
        return (self.layout.failed / f"{name}.reason.txt").read_text().splitlines()[0]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_a_pair_is_admitted_only_once_settled(rig: Rig) -> None:
    make_image(rig.inbox / "a.jpg")
    write_sidecar(rig.inbox / "a.yaml")
    rig.tick()
    assert rig.queued() == []
    rig.tick(1.0)
    assert rig.queued() == []
    rig.tick(1.1)
    assert rig.queued() == ["a"]
    assert files_under(rig.layout.pending) == ["a.jpg", "a.yaml"]
    assert files_under(rig.layout.manifests(rig.layout.pending)) == ["a.job.json"]
    assert files_under(rig.inbox) == []
    status = read_json(rig.layout.outbox / "a.status.json")
    assert status is not None
    assert status["status"] == "queued"
    assert status["position"] == 1
    assert status["estimated_wait_seconds"] == 0.0


def test_a_growing_file_restarts_the_settle_clock(rig: Rig) -> None:
    image = make_image(rig.inbox / "g.png")
    write_sidecar(rig.inbox / "g.yaml")
    rig.tick()
    rig.tick(1.5)
    with image.open("ab") as handle:  # still being copied
        handle.write(b"\0" * 10)
    rig.tick(1.0)
    assert rig.queued() == []
    make_image(image)  # the copy completes
    rig.tick(0.1)
    rig.tick(1.0)
    assert rig.queued() == []
    rig.tick(1.5)
    assert rig.queued() == ["g"]


def test_old_and_future_mtimes_neither_jump_the_queue_nor_get_stuck(rig: Rig) -> None:
    make_image(rig.inbox / "now.jpg")
    write_sidecar(rig.inbox / "now.yaml")
    rig.tick()
    rig.tick(2.5)
    for name, mtime in (("old", 978_307_200.0), ("future", time.time() + 10 * 365 * 86400)):
        image = make_image(rig.inbox / f"{name}.jpg")
        write_sidecar(rig.inbox / f"{name}.yaml")
        os.utime(image, (mtime, mtime))
        rig.intake.note(image)
        rig.intake.note(image.with_suffix(".yaml"))
    rig.tick()
    rig.tick(2.5)
    # Admitted together: mtime order among themselves, but after the job already queued.
    assert rig.queued() == ["now", "old", "future"]


def test_sidecar_wait_then_no_sidecar_and_no_image(rig: Rig) -> None:
    make_image(rig.inbox / "lonely.jpg")
    write_sidecar(rig.inbox / "stray.yaml")
    rig.tick()
    rig.tick(2.5)
    rig.tick(20)
    assert files_under(rig.layout.failed) == []
    rig.tick(11)
    assert rig.reason("lonely").startswith("no_sidecar: ")
    assert rig.reason("stray").startswith("no_image: ")
    assert files_under(rig.inbox) == []


def test_defaults_make_an_image_a_job_and_the_nearest_wins(rig: Rig) -> None:
    (rig.inbox / "rush" / "deep").mkdir(parents=True)
    (rig.inbox / "_defaults.yaml").write_text('instruction: "from the top"\nseed: 1\n')
    (rig.inbox / "rush" / "_defaults.yaml").write_text("priority: high\nseed: 2\n")
    make_image(rig.inbox / "rush" / "deep" / "x.jpg")
    make_image(rig.inbox / "rush" / "y.jpg")
    write_sidecar(rig.inbox / "rush" / "y.yaml", instruction="own words")
    rig.tick()
    rig.tick(2.5)
    rig.tick(2.5)
    jobs = {m.name: m for m in rig.spool.queued()}
    assert set(jobs) == {"rush/deep/x", "rush/y"}
    assert jobs["rush/deep/x"].spec["instruction"] == "from the top"
    assert jobs["rush/deep/x"].seed == 2
    assert jobs["rush/deep/x"].priority == "high"
    assert jobs["rush/y"].spec["instruction"] == "own words"
    assert jobs["rush/deep/x"].sidecar is None
    # _defaults.yaml files are never moved.
    assert (rig.inbox / "_defaults.yaml").exists()
    assert (rig.inbox / "rush" / "_defaults.yaml").exists()


def test_defaults_yml_is_read_like_defaults_yaml(rig: Rig) -> None:
    (rig.inbox / "st").mkdir()
    (rig.inbox / "_defaults.yaml").write_text('instruction: "from the top"\nseed: 1\n')
    (rig.inbox / "st" / "_defaults.yml").write_text("priority: high\nseed: 2\n")
    make_image(rig.inbox / "st" / "x.jpg")
    rig.tick()
    rig.tick(2.5)
    rig.tick(2.5)
    [job] = rig.spool.queued()
    assert job.name == "st/x"
    assert job.spec["instruction"] == "from the top"
    assert (job.seed, job.priority) == (2, "high")
    assert files_under(rig.layout.failed) == []
    assert (rig.inbox / "st" / "_defaults.yml").exists()
    assert rig.intake.layers(rig.inbox / "st" / "any.jpg") == [
        ("_defaults.yaml", {"instruction": "from the top", "seed": 1}),
        ("st/_defaults.yml", {"priority": "high", "seed": 2}),
    ]


def test_an_edited_defaults_yml_is_read_again(rig: Rig) -> None:
    defaults = rig.inbox / "_defaults.yml"
    defaults.write_text("instruction: first\n")
    assert rig.intake.layers(rig.inbox / "a.jpg") == [("_defaults.yml", {"instruction": "first"})]
    defaults.write_text("instruction: second, longer\n")
    rig.intake.note(defaults)
    rig.tick()
    layers = rig.intake.layers(rig.inbox / "a.jpg")
    assert layers == [("_defaults.yml", {"instruction": "second, longer"})]


def test_a_bad_defaults_yml_rejects_the_images_below_it_naming_the_file(rig: Rig) -> None:
    (rig.inbox / "st").mkdir()
    (rig.inbox / "st" / "_defaults.yml").write_text("steps: many\n")
    make_image(rig.inbox / "st" / "x.jpg")
    write_sidecar(rig.inbox / "st" / "x.yaml")
    rig.tick()
    rig.tick(2.5)
    assert rig.reason("st/x").startswith("invalid_sidecar: st/_defaults.yml: ")
    assert (rig.inbox / "st" / "_defaults.yml").exists()


def test_defaults_yaml_and_yml_in_one_folder_are_ambiguous_for_the_drops_below(rig: Rig) -> None:
    (rig.inbox / "st" / "deep").mkdir(parents=True)
    (rig.inbox / "other").mkdir()
    (rig.inbox / "st" / "_defaults.yaml").write_text("instruction: one\n")
    (rig.inbox / "st" / "_defaults.yml").write_text("instruction: other\n")
    make_image(rig.inbox / "st" / "alone.jpg")
    make_image(rig.inbox / "st" / "deep" / "paired.jpg")
    write_sidecar(rig.inbox / "st" / "deep" / "paired.yaml")
    make_image(rig.inbox / "other" / "fine.jpg")
    write_sidecar(rig.inbox / "other" / "fine.yaml")
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == ["other/fine"]
    for name in ("st/alone", "st/deep/paired"):
        reason = rig.reason(name)
        assert reason.startswith(
            "ambiguous: st/_defaults.yaml and st/_defaults.yml: two defaults files in one folder"
        ), reason
    assert (rig.layout.failed / "st" / "deep" / "paired.yaml").exists()
    # The defaults files stay; once one is gone, the folder's drops are jobs again.
    assert files_under(rig.inbox) == ["st/_defaults.yaml", "st/_defaults.yml"]
    (rig.inbox / "st" / "_defaults.yml").unlink()
    make_image(rig.inbox / "st" / "again.jpg")
    rig.intake.note(rig.inbox / "st" / "again.jpg")
    rig.tick()
    rig.tick(2.5)
    rig.tick(2.5)
    assert rig.queued() == ["other/fine", "st/again"]


def test_junk_is_ignored_and_left_alone(rig: Rig) -> None:
    junk = [
        ".DS_Store",
        "._IMG_1.jpg",
        "Thumbs.db",
        "desktop.ini",
        "~$report.docx",
        "IMG_2.jpg.tmp",
        "IMG_3.jpg.part",
        "IMG_4.jpg.crdownload",
        "x.partial",
        ".x.swp",
        "y.swp",
        "IMG_5.jpg.filepart",
        ".~lock.sheet.ods#",
        "_defaults.yml",
        # Windows clients write these in any letter case.
        "Desktop.ini",
        "THUMBS.DB",
        "FOO.TMP",
        "Y.PART",
        "IMG_7.JPG.CRDOWNLOAD",
        "back.Reason.TXT",
    ]
    for name in junk:
        assert is_ignored(name), name
        (rig.inbox / name).write_bytes(b"junk")
    (rig.inbox / "@eaDir").mkdir()
    (rig.inbox / "@eaDir" / "IMG_6.jpg").write_bytes(b"thumb")
    (rig.inbox / "$Recycle.Bin").mkdir()
    (rig.inbox / "$Recycle.Bin" / "IMG_8.jpg").write_bytes(b"deleted")
    rig.tick()
    rig.tick(60)
    kept = [*junk, "@eaDir/IMG_6.jpg", "$Recycle.Bin/IMG_8.jpg"]
    assert sorted(kept) == files_under(rig.inbox)
    assert files_under(rig.layout.failed) == []


def test_a_temp_name_renamed_to_its_final_name_is_picked_up(rig: Rig) -> None:
    write_sidecar(rig.inbox / "t.yaml")
    (rig.inbox / "t.jpg.part").write_bytes(make_image(rig.inbox.parent / "t.jpg").read_bytes())
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == []
    (rig.inbox / "t.jpg.part").rename(rig.inbox / "t.jpg")
    rig.intake.note(rig.inbox / "t.jpg")
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == ["t"]


def test_two_images_for_one_sidecar_are_ambiguous(rig: Rig) -> None:
    make_image(rig.inbox / "twin.jpg")
    make_image(rig.inbox / "twin.png")
    write_sidecar(rig.inbox / "twin.yaml")
    rig.tick()
    rig.tick(2.5)
    assert rig.reason("twin").startswith("ambiguous: ")
    assert files_under(rig.layout.failed) == [
        "twin.jpg",
        "twin.png",
        "twin.reason.txt",
        "twin.yaml",
    ]


def test_other_types_are_unsupported(rig: Rig) -> None:
    (rig.inbox / "notes.pdf").write_bytes(b"%PDF-1.4")
    rig.tick()
    rig.tick(2.5)
    assert rig.reason("notes").startswith("unsupported_type: ")
    # What to drop instead names every type taken, the photographers' files too.
    assert (
        "heic heif avif, camera RAW (dng cr2"
        in (rig.layout.failed / "notes.reason.txt").read_text()
    )
    assert (rig.layout.failed / "notes.pdf").exists()


def test_links_fifos_and_sockets_named_like_images_are_rejected(rig: Rig, tmp_path: Path) -> None:
    outside = make_image(tmp_path / "secret.jpg")
    (rig.inbox / "link.jpg").symlink_to(outside)
    os.mkfifo(rig.inbox / "pipe.jpg")
    os.link(outside, rig.inbox / "hard.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(rig.inbox / "sock.jpg"))
    try:
        rig.tick()
        rig.tick(2.5)
    finally:
        sock.close()
    for name in ("link", "pipe", "hard", "sock"):
        assert rig.reason(name).startswith("unsupported_type: "), name
    assert outside.exists()
    assert files_under(rig.inbox) == []


def test_an_image_refused_as_a_link_takes_its_sidecar_with_it(rig: Rig, tmp_path: Path) -> None:
    write_sidecar(rig.inbox / "hl.yaml")
    rig.tick()
    rig.tick(2.5)
    waiting = read_json(rig.layout.status_path("hl")) or {}
    assert waiting["detail"] == "waiting for its image"
    outside = make_image(tmp_path / "original.jpg")
    os.link(outside, rig.inbox / "hl.jpg")
    rig.intake.note(rig.inbox / "hl.jpg")
    rig.tick(1)
    assert files_under(rig.layout.failed) == ["hl.jpg", "hl.reason.txt", "hl.yaml"]
    assert rig.reason("hl").startswith("unsupported_type: hl.jpg has 2 hard links")
    failed = read_json(rig.layout.status_path("hl")) or {}
    assert (failed["status"], failed["job_id"]) == ("failed", waiting["job_id"])
    rig.tick(60)  # nothing is left to wait for an image that was there
    assert files_under(rig.inbox) == []
    assert sorted(files_under(rig.layout.failed)) == ["hl.jpg", "hl.reason.txt", "hl.yaml"]


def test_overflow_beyond_the_cap_is_queue_full(tmp_path: Path) -> None:
    rig = Rig(tmp_path, max_pending=2)
    for i in range(4):
        make_image(rig.inbox / f"c{i}.jpg")
        write_sidecar(rig.inbox / f"c{i}.yaml")
    rig.tick()
    rig.tick(2.5)
    assert len(rig.queued()) == 2
    rejected = [p for p in files_under(rig.layout.failed) if p.endswith(".reason.txt")]
    assert len(rejected) == 2
    for path in rejected:
        assert (rig.layout.failed / path).read_text().startswith("queue_full: ")


def test_invalid_images_go_to_failed_with_their_code(rig: Rig) -> None:
    (rig.inbox / "noise.jpg").write_bytes(os.urandom(2000))
    write_sidecar(rig.inbox / "noise.yaml")
    make_image(rig.inbox / "wide.png", size=(3000, 20))
    write_sidecar(rig.inbox / "wide.yaml")
    rig.tick()
    rig.tick(2.5)
    assert rig.reason("noise").startswith("invalid_image: ")
    assert rig.reason("wide").startswith("too_large: ")
    assert (rig.layout.failed / "noise.yaml").exists()


def test_a_truncated_image_waits_then_is_invalid(tmp_path: Path) -> None:
    rig = Rig(tmp_path, incomplete_image_seconds=20)
    whole = make_image(tmp_path / "whole.jpg", size=(256, 256), color=(10, 200, 30))
    data = whole.read_bytes()
    (rig.inbox / "cut.jpg").write_bytes(data[: len(data) // 2])
    write_sidecar(rig.inbox / "cut.yaml")
    rig.tick()
    rig.tick(2.5)
    rig.tick(10)
    assert files_under(rig.layout.failed) == []
    rig.tick(15)
    assert rig.reason("cut").startswith("invalid_image: ")


def test_a_big_image_decodes_beside_its_sidecar_and_still_speaks_first(tmp_path: Path) -> None:
    """A drop of 64 KB or more is probed on a thread of its own while intake reads its
    sidecar: a good one is admitted, and a half-copied one waits even when its sidecar is
    broken (the image's word comes first, as when the two were checked one after another)."""
    rig = Rig(tmp_path, incomplete_image_seconds=20)
    noisy = Image.effect_noise((400, 300), 80).convert("RGB")
    noisy.save(tmp_path / "big.jpg", quality=95)
    data = (tmp_path / "big.jpg").read_bytes()
    assert len(data) >= probes.BACKGROUND_BYTES
    (rig.inbox / "good.jpg").write_bytes(data)
    write_sidecar(rig.inbox / "good.yaml")
    (rig.inbox / "cut.jpg").write_bytes(data[: len(data) // 2])
    (rig.inbox / "cut.yaml").write_text("instruction: [unclosed\n")
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == ["good"]
    assert files_under(rig.layout.failed) == []  # cut waits: it may still be copying
    rig.tick(25)
    assert rig.reason("cut").startswith("invalid_image: ")


def test_cancel_file_reaches_the_service_and_is_removed(rig: Rig) -> None:
    (rig.inbox / "st").mkdir()
    (rig.inbox / "st" / "IMG_1.cancel").write_text("")
    rig.tick()
    rig.tick(2.5)
    assert rig.cancelled == ["st/IMG_1"]
    assert files_under(rig.inbox) == []


def test_a_cancel_that_matches_nothing_leaves_a_reason_file(rig: Rig) -> None:
    (rig.inbox / "st").mkdir()
    (rig.inbox / "st" / "IMG_9.cancel").write_text("")
    rig.tick()
    rig.tick(2.5)
    assert files_under(rig.inbox) == []
    reason = (rig.layout.failed / "st" / "IMG_9.cancel.reason.txt").read_text()
    assert reason.startswith("no_image: inbox/st/IMG_9.cancel cancelled nothing: ")
    assert "No job named st/IMG_9 is known" in reason
    assert rig.queued() == []


def test_a_cancel_for_a_finished_job_says_what_became_of_it(rig: Rig) -> None:
    write_sidecar(rig.inbox / "done.yaml", instruction=5)  # rejected: invalid_sidecar
    make_image(rig.inbox / "done.jpg")
    rig.tick()
    rig.tick(2.5)
    (rig.inbox / "done.cancel").write_text("")
    rig.intake.note(rig.inbox / "done.cancel")
    rig.tick()
    rig.tick(2.5)
    reason = (rig.layout.failed / "done.cancel.reason.txt").read_text()
    assert "The job done is failed; only a queued or processing job can be cancelled" in reason
    assert rig.reason("done").startswith("invalid_sidecar: ")  # the job's own reason is kept


def test_a_cancel_matches_its_job_whatever_the_letter_case(rig: Rig) -> None:
    make_image(rig.inbox / "Keep.jpg")
    write_sidecar(rig.inbox / "Keep.yaml")
    make_image(rig.inbox / "Stop.jpg")
    write_sidecar(rig.inbox / "Stop.yaml")
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == ["Keep", "Stop"]
    (rig.inbox / "stop.cancel").write_text("")
    rig.intake.note(rig.inbox / "stop.cancel")
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == ["Keep"]
    assert rig.reason("Stop").startswith("cancelled: ")


@pytest.mark.parametrize(
    ("image", "side"),
    [
        ("CaseMix.JPG", "casemix.yaml"),
        ("img_1.jpg", "IMG_1.YML"),
        ("Cafe\u0301.jpg", "Caf\u00e9.yaml"),  # macOS writes NFD; a script writes NFC
        ("Caf\u00e9.jpg", "CAFE\u0301.yaml"),
    ],
)
def test_pairing_ignores_letter_case_and_unicode_form(rig: Rig, image: str, side: str) -> None:
    make_image(rig.inbox / image)
    write_sidecar(rig.inbox / side)
    rig.tick()
    rig.tick(2.5)
    stem = image.rpartition(".")[0]
    assert rig.queued() == [stem]  # named after the image, as dropped
    expected = [image, stem + "." + side.rpartition(".")[2]]  # the sidecar takes the job's name
    assert sorted(files_under(rig.layout.pending)) == sorted(expected)
    assert files_under(rig.layout.failed) == []


def test_two_images_differing_only_in_case_are_ambiguous(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    (rig.inbox / "_defaults.yaml").write_text("instruction: warmer\n")
    make_image(rig.inbox / "IMG_1.jpg")
    make_image(rig.inbox / "img_1.png")
    rig.tick()
    rig.tick(2.5)
    rig.tick(2.5)
    assert rig.queued() == []
    reason = rig.reason("IMG_1")
    assert reason.startswith("ambiguous: IMG_1.jpg, img_1.png: names that differ only in letter")
    assert sorted(files_under(rig.layout.failed)) == ["IMG_1.jpg", "IMG_1.png", "IMG_1.reason.txt"]


def test_a_case_clash_is_named_after_the_image_dropped_first(tmp_path: Path) -> None:
    # A station drops img_1 with its sidecar; a photographer then drops IMG_1.JPG. On a
    # case-sensitive disk the station polls outbox/img_1.status.json: that is the answer's
    # name, and the reason says the same (found by a SPEC audit: it was IMG_1, sorted first).
    rig = Rig(tmp_path)
    make_image(rig.inbox / "img_1.jpg")
    write_sidecar(rig.inbox / "img_1.yaml")
    make_image(rig.inbox / "IMG_1.JPG")
    later = time.time() + 1
    os.utime(rig.inbox / "IMG_1.JPG", (later, later))
    rig.tick()
    rig.tick(2.5)
    rig.tick(2.5)
    assert rig.queued() == []
    status = read_json(rig.layout.outbox / "img_1.status.json")
    assert status is not None
    assert (status["status"], status["error_code"]) == ("failed", "ambiguous")
    assert "so the job img_1 is ambiguous" in rig.reason("img_1")
    assert sorted(files_under(rig.layout.failed)) == [
        "img_1 (2).JPG",
        "img_1.jpg",
        "img_1.reason.txt",
        "img_1.yaml",
    ]


@pytest.mark.parametrize(
    ("dropped", "failed"),
    [
        # Two images with one extension, and their sidecar (a Windows share shows one name).
        (
            ["s/Foo.jpg", "s/foo.jpg", "s/foo.yaml"],
            ["s/Foo (2).jpg", "s/Foo.jpg", "s/Foo.reason.txt", "s/Foo.yaml"],
        ),
        # One image and two sidecars whose names differ only in letter case.
        (
            ["two.jpg", "two.yaml", "TWO.yaml"],
            ["two (2).yaml", "two.jpg", "two.reason.txt", "two.yaml"],
        ),
        # The extensions themselves differ only in case (named after the image dropped first).
        (
            ["s/Pic.png", "s/PIC.PNG", "s/pic.yaml"],
            ["s/Pic (2).PNG", "s/Pic.png", "s/Pic.reason.txt", "s/Pic.yaml"],
        ),
    ],
)
def test_an_ambiguous_drop_goes_to_failed_whole(
    rig: Rig, dropped: list[str], failed: list[str]
) -> None:
    for name in dropped:
        (rig.inbox / name).parent.mkdir(parents=True, exist_ok=True)
        if name.lower().endswith(".yaml"):
            write_sidecar(rig.inbox / name)
        else:
            make_image(rig.inbox / name)
    rig.tick()
    rig.tick(2.5)
    rig.tick(40)  # past sidecar_wait_seconds: nothing was left behind to wait for
    assert rig.queued() == []
    assert files_under(rig.inbox) == []
    assert sorted(files_under(rig.layout.failed)) == sorted(failed)
    job = failed[-1].removesuffix(".yaml")
    assert rig.reason(job).startswith("ambiguous: ")
    # Every file of the drop is named in its reason, as dropped.
    for name in dropped:
        assert name.rpartition("/")[2] in rig.reason(job)
    assert not any(a.lower() == b.lower() and a != b for a in failed for b in failed)


def test_a_name_that_differs_only_in_letter_case_is_taken(rig: Rig) -> None:
    # On the Windows and macOS shares stations use, IMG_1 and img_1 are one name.
    def drop(stem: str, extension: str = ".jpg") -> None:
        rig.drop(stem, extension)
        rig.tick()
        rig.tick(2.5)

    drop("IMG_1")
    drop("img_1")  # while the first is queued
    drop("Café")
    drop("CAFE\u0301", ".png")  # macOS writes the accent apart (NFD)
    assert rig.queued() == ["IMG_1", "img_1~2", "Café", "CAFE\u0301~2"]
    pending = files_under(rig.layout.pending)
    assert not any(a != b and a.lower() == b.lower() for a in pending for b in pending)


def test_a_folder_named_like_an_image_is_a_folder_of_drops(rig: Rig) -> None:
    for folder in ("Holiday.JPG", "2026.11.29", "shoot.png/inner.tif"):
        make_image(rig.inbox / folder / "a.jpg")
        write_sidecar(rig.inbox / folder / "a.yaml")
    rig.tick()
    rig.tick(2.5)
    assert sorted(rig.queued()) == [
        "2026.11.29/a",
        "Holiday.JPG/a",
        "shoot.png/inner.tif/a",
    ]
    assert files_under(rig.layout.failed) == []


def test_a_reason_file_dragged_back_into_inbox_is_ignored(rig: Rig) -> None:
    make_image(rig.inbox / "back.jpg")
    write_sidecar(rig.inbox / "back.yaml")
    (rig.inbox / "back.reason.txt").write_text("queue_full: the queue is full\n")
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == ["back"]
    assert files_under(rig.inbox) == ["back.reason.txt"]  # left alone: never a job, never ~2
    assert files_under(rig.layout.failed) == []


def test_a_utf16_sidecar_from_powershell_is_read(rig: Rig) -> None:
    make_image(rig.inbox / "ps.jpg")
    # PowerShell 5: "instruction: Make it warmer" > ps.yaml writes UTF-16 LE with a BOM.
    (rig.inbox / "ps.yaml").write_bytes("instruction: Make it warmer\r\n".encode("utf-16"))
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == ["ps"]
    assert rig.spool.queued()[0].spec["instruction"] == "Make it warmer"


def test_an_unreachable_inbox_pauses_intake_and_forgets_nothing(rig: Rig, tmp_path: Path) -> None:
    make_image(rig.inbox / "k.jpg")
    rig.tick()
    away = tmp_path / "away"
    rig.inbox.rename(away)
    rig.tick(1)
    assert rig.intake.unreachable is not None
    assert "inbox" in rig.board.notes["intake"]
    away.rename(rig.inbox)
    write_sidecar(rig.inbox / "k.yaml")
    rig.tick(0.5)
    rig.tick(2.5)
    assert rig.intake.unreachable is None
    assert rig.queued() == ["k"]


def test_the_time_inbox_was_away_counts_towards_no_wait(rig: Rig, tmp_path: Path) -> None:
    # A lone image waits sidecar_wait_seconds (30) for its sidecar; the share drops out for
    # longer than that, and the station writes the sidecar a moment after it is back.
    make_image(rig.inbox / "lone.jpg")
    rig.tick()
    rig.tick(2.5)
    away = tmp_path / "away"
    rig.inbox.rename(away)
    rig.tick(60)
    assert rig.intake.unreachable is not None
    away.rename(rig.inbox)
    rig.tick(1)  # back: the image waits its full time again
    assert files_under(rig.layout.failed) == []
    rig.tick(5)
    write_sidecar(rig.inbox / "lone.yaml")
    rig.intake.note(rig.inbox / "lone.yaml")
    rig.tick(0.5)
    rig.tick(2.5)
    assert rig.queued() == ["lone"]
    assert files_under(rig.layout.failed) == []


def test_a_folder_that_cannot_be_read_for_a_while_is_not_a_deleted_drop(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    import errno
    import logging

    make_image(rig.inbox / "st1" / "lone.jpg")
    rig.tick()
    rig.tick(2.5)
    assert (read_json(rig.layout.status_path("st1/lone")) or {}).get("status") == "waiting"
    # Its folder cannot be read (permissions changed, a share's hiccup) for a minute.
    real = rig.intake.looking.lstat
    folder = os.fspath(rig.inbox / "st1")

    def refused(path: Path) -> os.stat_result:
        if os.fspath(path).startswith(folder):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    rig.intake.looking.lstat = refused
    with caplog.at_level(logging.WARNING, logger="hotfolder.intake"):
        for _ in range(30):
            rig.intake.note(rig.inbox / "st1" / "lone.jpg")
            rig.tick(2)
    warned = [r for r in caplog.records if "cannot look at" in r.getMessage()]
    assert len(warned) == 1  # said once, not on every tick
    assert (read_json(rig.layout.status_path("st1/lone")) or {}).get("status") == "waiting"
    assert files_under(rig.layout.failed) == []
    # Back: the image waits its full time for the sidecar the station writes now.
    rig.intake.looking.lstat = real
    rig.intake.note(rig.inbox / "st1" / "lone.jpg")
    rig.tick(1)
    rig.tick(5)
    assert files_under(rig.layout.failed) == []
    write_sidecar(rig.inbox / "st1" / "lone.yaml")
    rig.intake.note(rig.inbox / "st1" / "lone.yaml")
    rig.tick(0.5)
    rig.tick(2.5)
    assert rig.queued() == ["st1/lone"]


def test_a_sidecar_still_full_of_zero_bytes_is_waited_for_then_refused(rig: Rig) -> None:
    # A copier that sets the final size first and fills it in later (Windows Explorer over
    # SMB) leaves zero bytes where the text will be; with a pause, it looks settled.
    text = b'instruction: "Make it warmer"\n'
    for stem in ("later", "never"):
        make_image(rig.inbox / f"{stem}.jpg")
        (rig.inbox / f"{stem}.yaml").write_bytes(text[:10] + bytes(len(text) - 10))
    rig.tick()
    rig.tick(2.5)
    for stem in ("later", "never"):
        shown = read_json(rig.layout.status_path(stem)) or {}
        assert (shown["status"], shown["detail"]) == (
            "waiting",
            "waiting for the file to finish copying",
        )
    (rig.inbox / "later.yaml").write_bytes(text)  # the rest arrives
    rig.intake.note(rig.inbox / "later.yaml")
    rig.tick(0.5)
    rig.tick(2.5)
    assert rig.queued() == ["later"]
    rig.tick(60)  # incomplete_image_seconds: it never will be whole
    assert rig.reason("never") == (
        "invalid_sidecar: never.yaml: the file holds zero bytes (NUL), as one still being "
        "written does; if it is whole, save it again as plain UTF-8 text"
    )


# --- the image intake decoded, kept for the worker (decoded.py) -------------------------------


def test_with_a_short_queue_the_worker_takes_the_image_intake_decoded(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_image(rig.inbox / "a.jpg", size=(96, 64))
    write_sidecar(rig.inbox / "a.yaml")
    rig.tick()
    rig.tick(3)
    assert rig.queued() == ["a"]
    assert len(rig.jobs.decoded) == 1
    manifest = rig.spool.find("a")
    assert manifest is not None
    in_pending = rig.layout.pending / "a.jpg"
    expected = images.load_for_edit(in_pending, limits=rig.config.limits)
    decodes: list[Path] = []
    real = images.load_for_edit

    def counted(path: Path, **kwargs: Any) -> images.SourceImage:
        decodes.append(path)
        return real(path, **kwargs)

    monkeypatch.setattr(images, "load_for_edit", counted)
    ticket = make_ticket(rig.config, rig.jobs, manifest)
    assert decodes == []  # not decoded a second time
    assert ticket.size == expected.size == (96, 64)
    assert ticket.image().tobytes() == expected.image.tobytes()
    assert len(rig.jobs.decoded) == 0  # taken once
    make_ticket(rig.config, rig.jobs, manifest)
    assert decodes == [in_pending]


def test_an_image_changed_since_intake_decoded_it_is_decoded_again(rig: Rig) -> None:
    make_image(rig.inbox / "a.jpg", size=(96, 64), color=(200, 40, 40))
    write_sidecar(rig.inbox / "a.yaml")
    rig.tick()
    rig.tick(3)
    assert len(rig.jobs.decoded) == 1
    manifest = rig.spool.find("a")
    assert manifest is not None
    in_pending = rig.layout.pending / "a.jpg"
    before = in_pending.stat()
    make_image(in_pending, size=(96, 64), color=(20, 40, 200))
    os.utime(in_pending, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000))
    ticket = make_ticket(rig.config, rig.jobs, manifest)
    blue = images.load_for_edit(in_pending, limits=rig.config.limits)
    assert ticket.image().tobytes() == blue.image.tobytes()


def test_with_a_longer_queue_intake_keeps_no_more_than_it_should(rig: Rig) -> None:
    for name in ("a", "b", "c", "d"):
        make_image(rig.inbox / f"{name}.jpg")
        write_sidecar(rig.inbox / f"{name}.yaml")
    rig.tick()
    rig.tick(3)
    assert rig.queued() == ["a", "b", "c", "d"]
    # Kept while fewer than KEEP_DECODED_BELOW were queued, and never more than KEEP_IMAGES.
    assert len(rig.jobs.decoded) == min(KEEP_DECODED_BELOW, KEEP_IMAGES)


def test_decoded_images_are_kept_briefly_and_few(tmp_path: Path) -> None:
    now = [0.0]
    decoded = Decoded(keep_images=2, keep_seconds=30, monotonic=lambda: now[0])
    paths = [make_image(tmp_path / f"{name}.jpg") for name in ("a", "b", "c")]
    source = images.load_for_edit(paths[0], limits=Limits())
    for path in paths:
        decoded.put(os.lstat(path), source)
    assert len(decoded) == 2
    assert decoded.take(paths[0]) is None  # the oldest made room
    now[0] = 31.0
    assert decoded.take(paths[1]) is None  # kept too long: the worker decodes it
    assert decoded.take(paths[2]) is None
    assert decoded.take(tmp_path / "gone.jpg") is None


def test_a_burst_is_admitted_in_one_tick_in_growing_batches_each_with_its_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 32, then 64, ... written on the admit thread while the next are decided;
    each job's status file reads queued, with its place, before any publish."""
    rig = Rig(tmp_path, max_pending=500)
    names = [f"b{index:03d}" for index in range(100)]
    for index, name in enumerate(names):
        make_image(rig.inbox / f"{name}.jpg")
        write_sidecar(rig.inbox / f"{name}.yaml")
        os.utime(rig.inbox / f"{name}.jpg", ns=(0, 1_000_000_000 + index))  # dropped in order
    sizes: list[int] = []
    real = rig.jobs.write_admitted

    def counted(names: Any = None) -> Any:
        sizes.append(len(names))
        return real(names)

    monkeypatch.setattr(rig.jobs, "write_admitted", counted)
    rig.intake.tick()  # seen
    rig.clock.advance(3)
    rig.intake.tick()  # settled: all of them, in this one tick
    assert sizes == [32, 64, 4]
    assert rig.queued() == names
    assert files_under(rig.inbox) == []
    for position, name in enumerate(names, start=1):
        status = read_json(rig.layout.status_path(name))
        assert (status["status"], status["position"]) == ("queued", position)
    # The publisher finds nothing of theirs to write: their files read so already.
    due = [s for s in rig.board.publish().queued if not rig.board.files.moved_only(s)]
    assert due == []


def test_a_defaults_file_that_comes_after_its_image_is_seen_is_used(rig: Rig) -> None:
    make_image(rig.inbox / "st" / "a.jpg")
    rig.tick()
    rig.tick(3)  # settled, but no instruction: it waits for a sidecar
    assert rig.queued() == []
    # No event tells intake of it (a polling share): the next tick looks for it all the same.
    (rig.inbox / "st" / "_defaults.yaml").write_text("instruction: from the folder\n")
    rig.tick(1)
    rig.tick(3)
    manifest = rig.spool.find("st/a")
    assert manifest is not None
    assert manifest.spec["instruction"] == "from the folder"


def test_an_image_intake_keeps_has_its_before_thumbnail_made_at_once(tmp_path: Path) -> None:
    decoded = Decoded()
    path = make_image(tmp_path / "a.jpg", size=(1200, 800))
    source = images.load_for_edit(path, limits=Limits())
    decoded.put(os.lstat(path), source)
    kept = decoded.take(path)
    assert kept is not None and kept.source is source
    assert kept.before is not None
    thumbnail = kept.before.result(timeout=30)
    assert thumbnail is not None
    with Image.open(io.BytesIO(thumbnail)) as small:
        assert small.format == "JPEG"
        assert max(small.size) <= 256 and small.size[0] > small.size[1]


def test_a_status_file_outbox_refuses_never_holds_up_an_admission(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_image(rig.inbox / "a.jpg")
    write_sidecar(rig.inbox / "a.yaml")
    real = fsops._write_temp

    def outbox_refuses(item: tuple[Path, Path, bytes], *, sync: bool = True) -> None:
        if item[1].parent == rig.layout.outbox:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(item, sync=sync)

    monkeypatch.setattr(fsops, "_write_temp", outbox_refuses)
    rig.intake.tick()
    rig.clock.advance(3)
    rig.intake.tick()
    assert rig.queued() == ["a"]  # admitted: its manifest and files are in pending/
    assert files_under(rig.inbox) == []
    assert not rig.layout.status_path("a").exists()
    monkeypatch.setattr(fsops, "_write_temp", real)
    rig.board.publish()  # the publisher writes it once outbox/ takes it
    assert read_json(rig.layout.status_path("a"))["status"] == "queued"
