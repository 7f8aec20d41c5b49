"""A camera's RAW file next to its JPEG or HEIF is one drop (SPEC "Photographers' files"): the
JPEG or HEIF is edited, the RAW travels with the job through pending/ and processing/ to
archive/ or failed/. Driven tick by tick through the real intake, spool and jobs."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import files_under, make_image, read_json, write_sidecar
from test_intake import Rig
from test_retries import again

from hotfolder.spool import JobState
from tests import samples


def shoot(folder: Path, stem: str, *, raw: str = ".CR3", shot: str = ".JPG") -> list[Path]:
    """What a camera set to RAW+JPEG writes: the RAW file and the picture, same name."""
    folder.mkdir(parents=True, exist_ok=True)
    raw_file = folder / f"{stem}{raw}"
    raw_file.write_bytes(samples.dng())
    picture = folder / f"{stem}{shot}"
    picture.write_bytes(samples.heic() if shot.lower() in (".heic", ".heif") else b"")
    if not picture.stat().st_size:
        make_image(picture)
    return [raw_file, picture]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def settle(rig: Rig) -> None:
    rig.tick()
    rig.tick(2.5)


def test_raw_and_jpeg_with_a_sidecar_are_one_job_named_as_dropped(rig: Rig) -> None:
    shoot(rig.inbox, "IMG_7001")
    write_sidecar(rig.inbox / "IMG_7001.yaml")
    settle(rig)
    assert rig.queued() == ["IMG_7001"]
    assert files_under(rig.layout.pending) == ["IMG_7001.CR3", "IMG_7001.JPG", "IMG_7001.yaml"]
    manifest = rig.spool.find("IMG_7001")
    assert manifest is not None
    assert (manifest.image, manifest.companions) == ("IMG_7001.JPG", ["IMG_7001.CR3"])
    assert files_under(rig.inbox) == []
    assert not (rig.layout.outbox / "IMG_7001~2.status.json").exists()


@pytest.mark.parametrize("shot", [".HEIC", ".heif", ".jpeg"])
def test_raw_beside_heif_or_jpeg_with_folder_defaults_is_one_job(rig: Rig, shot: str) -> None:
    (rig.inbox / "card").mkdir()
    (rig.inbox / "card" / "_defaults.yaml").write_text('instruction: "warmer"\n')
    shoot(rig.inbox / "card", "DSC_0001", raw=".NEF", shot=shot)
    settle(rig)
    rig.tick(2.5)  # the grace in which a sidecar may still follow
    assert rig.queued() == ["card/DSC_0001"]
    assert files_under(rig.layout.pending) == sorted(["card/DSC_0001.NEF", f"card/DSC_0001{shot}"])


def test_names_that_differ_only_in_case_pair(rig: Rig) -> None:
    shoot(rig.inbox, "img_7002", raw=".cr3", shot=".jpg")
    (rig.inbox / "img_7002.jpg").rename(rig.inbox / "IMG_7002.JPG")
    write_sidecar(rig.inbox / "Img_7002.yaml")
    settle(rig)
    assert rig.queued() == ["IMG_7002"]
    assert files_under(rig.layout.pending) == ["IMG_7002.JPG", "IMG_7002.cr3", "IMG_7002.yaml"]


def test_a_raw_still_copying_holds_its_jpeg_until_both_settle(rig: Rig) -> None:
    raw, _ = shoot(rig.inbox, "IMG_7003")
    write_sidecar(rig.inbox / "IMG_7003.yaml")
    data = raw.read_bytes()
    raw.write_bytes(data[:100])  # the card copy has just begun writing the RAW
    rig.tick()
    with raw.open("ab") as handle:  # ...and goes on
        handle.write(data[100:1000])
    rig.tick(1.5)
    rig.tick(1.0)  # the JPEG and the sidecar settled; the RAW changed a second ago
    assert rig.queued() == []
    status = read_json(rig.layout.outbox / "IMG_7003.status.json")
    assert status is not None
    assert status["status"] == "waiting"
    with raw.open("ab") as handle:
        handle.write(data[1000:])
    rig.tick(1.0)
    assert rig.queued() == []
    rig.tick(2.5)
    assert rig.queued() == ["IMG_7003"]
    assert "IMG_7003.CR3" in files_under(rig.layout.pending)


def test_a_raw_alone_is_a_job_of_its_own_and_is_developed(rig: Rig) -> None:
    (rig.inbox / "IMG_7004.DNG").write_bytes(samples.dng())
    write_sidecar(rig.inbox / "IMG_7004.yaml")
    settle(rig)
    manifest = rig.spool.find("IMG_7004")
    assert manifest is not None
    assert (manifest.image, manifest.companions) == ("IMG_7004.DNG", [])


def test_a_refused_drop_takes_its_raw_to_failed(rig: Rig) -> None:
    shoot(rig.inbox, "IMG_7005")
    (rig.inbox / "IMG_7005.yaml").write_text("instruction: 5\nsteps: many\n")
    settle(rig)
    assert files_under(rig.layout.failed) == [
        "IMG_7005.CR3",
        "IMG_7005.JPG",
        "IMG_7005.reason.txt",
        "IMG_7005.yaml",
    ]
    assert rig.reason("IMG_7005").startswith("invalid_sidecar")
    assert files_under(rig.inbox) == []


@pytest.mark.parametrize("keep_inputs", [True, False])
def test_the_raw_ends_where_the_jpeg_ends(tmp_path: Path, keep_inputs: bool) -> None:
    rig = Rig(tmp_path, keep_inputs=keep_inputs)
    shoot(rig.inbox, "IMG_7006")
    write_sidecar(rig.inbox / "IMG_7006.yaml")
    settle(rig)
    claimed = rig.jobs.claim("cpu", "cpu")
    assert claimed is not None
    rig.jobs.record_claim(claimed.name)
    assert files_under(rig.layout.processing) == [
        "IMG_7006.CR3",
        "IMG_7006.JPG",
        "IMG_7006.yaml",
    ]
    assert rig.jobs.complete("IMG_7006", b"result", ".jpg")
    kept = ["IMG_7006.CR3", "IMG_7006.JPG", "IMG_7006.yaml"] if keep_inputs else []
    assert files_under(rig.layout.archive) == kept
    assert files_under(rig.layout.processing) == []


def test_a_failed_job_takes_its_raw_to_failed_and_retry_brings_it_back(rig: Rig) -> None:
    shoot(rig.inbox, "IMG_7007")
    write_sidecar(rig.inbox / "IMG_7007.yaml")
    settle(rig)
    claimed = rig.jobs.claim("cpu", "cpu")
    assert claimed is not None
    assert rig.jobs.fail("IMG_7007", "edit_failed", "the editor gave up")
    assert files_under(rig.layout.failed) == [
        "IMG_7007.CR3",
        "IMG_7007.JPG",
        "IMG_7007.reason.txt",
        "IMG_7007.yaml",
    ]
    assert "IMG_7007.CR3" in (rig.layout.failed / "IMG_7007.reason.txt").read_text()
    again(rig, "IMG_7007")
    manifest = rig.spool.find("IMG_7007")
    assert manifest is not None
    assert (manifest.state, manifest.image, manifest.companions) == (
        JobState.queued,
        "IMG_7007.JPG",
        ["IMG_7007.CR3"],
    )
    assert files_under(rig.layout.pending) == ["IMG_7007.CR3", "IMG_7007.JPG", "IMG_7007.yaml"]


def test_a_crash_between_the_manifest_and_the_raw_is_finished_on_start(rig: Rig) -> None:
    raw, picture = shoot(rig.inbox, "IMG_7008")
    write_sidecar(rig.inbox / "IMG_7008.yaml")
    settle(rig)
    # As if the service died after writing the manifest and moving only the JPEG.
    pending = rig.layout.pending
    (pending / "IMG_7008.CR3").rename(raw)
    restarted = Rig(rig.layout.root)
    restarted.jobs.recover()
    assert files_under(pending) == ["IMG_7008.CR3", "IMG_7008.JPG", "IMG_7008.yaml"]
    assert not picture.exists() and not raw.exists()


def test_a_raw_that_starts_copying_after_its_jpeg_is_still_one_drop(rig: Rig) -> None:
    """A card copy writes the JPEG, then the RAW: the RAW appears before the JPEG settles."""
    make_image(rig.inbox / "IMG_7009.JPG")
    write_sidecar(rig.inbox / "IMG_7009.yaml")
    rig.tick()
    data = samples.dng()
    raw = rig.inbox / "IMG_7009.CR3"
    raw.write_bytes(data[:200])
    rig.intake.note(raw)  # what the watcher does
    rig.tick(1.5)
    with raw.open("ab") as handle:
        handle.write(data[200:])
    rig.tick(1.0)  # the JPEG settled, the RAW is still being written
    assert rig.queued() == []
    rig.tick(2.5)
    assert rig.queued() == ["IMG_7009"]
    assert files_under(rig.layout.pending) == ["IMG_7009.CR3", "IMG_7009.JPG", "IMG_7009.yaml"]
