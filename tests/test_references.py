"""Reference images for edit-plus (SPEC "Reference images"): `images:` names `_` assets that a
job copies at admission; the copies travel with the job and reach the editor decoded."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support import (
    ServiceProcess,
    drop_pair,
    files_under,
    has_status,
    hotfolder,
    make_image,
    read_json,
    wait_for,
    write_config,
    write_sidecar,
)
from test_intake import Rig

from hotfolder import render
from hotfolder.config import Config, EditorConfig
from hotfolder.dispatch import make_ticket
from hotfolder.errors import Reason, Rejected
from hotfolder.names import is_ignored
from hotfolder.retry import retry
from hotfolder.sidecar import resolve

CONFIG = Config()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(layers: list[tuple[str, dict[str, Any]]], config: Config = CONFIG) -> str:
    with pytest.raises(Rejected) as info:
        resolve(layers, config=config)
    assert info.value.code is Reason.invalid_sidecar
    return info.value.message


# --- the sidecar key --------------------------------------------------------------------------


def test_images_resolve_to_the_names_nearest_layer_winning() -> None:
    layers = [
        ("_defaults.yaml", {"instruction": "put the logo on the shirt", "images": ["_a.png"]}),
        ("IMG.yaml", {"images": ["_logo.png", "_pose.jpg"]}),
    ]
    assert resolve(layers, config=CONFIG).images == ["_logo.png", "_pose.jpg"]
    assert resolve(layers[:1], config=CONFIG).images == ["_a.png"]
    cleared = [*layers, ("IMG.yml", {"images": None})]
    assert resolve(cleared, config=CONFIG).images == []


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["logo.png"], "'logo.png' is not an asset name"),
        (["../_logo.png"], "leaves the folder tree"),
        (["_a/../../_logo.png"], "leaves the folder tree"),
        (["sub\\_logo.png"], "leaves the folder tree"),
        ([".."], "leaves the folder tree"),
        (["_a.png", "_b.png", "_c.png"], "at most 2"),
        ("_logo.png", "list"),
    ],
)
def test_a_bad_images_value_is_invalid_sidecar_naming_the_file(names: Any, expected: str) -> None:
    message = refused([("st/IMG.yaml", {"instruction": "x", "images": names})])
    assert message.startswith("st/IMG.yaml: ")
    assert "images" in message
    assert expected in message


def test_images_in_a_defaults_file_name_that_file() -> None:
    layers = [("st/_defaults.yaml", {"images": ["logo.png"]}), ("IMG.yaml", {"instruction": "x"})]
    assert refused(layers).startswith("st/_defaults.yaml: ")


def test_images_with_pipeline_edit_is_invalid_sidecar() -> None:
    config = Config(editor=EditorConfig(pipeline="edit"))
    message = refused([("IMG.yaml", {"instruction": "x", "images": ["_logo.png"]})], config)
    assert message.startswith("IMG.yaml: ")
    assert "edit-plus" in message
    # An empty list asks for nothing: fine on either pipeline.
    resolve([("IMG.yaml", {"instruction": "x", "images": []})], config=config)


# --- intake: assets, admission, copies -------------------------------------------------------


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path, settle_seconds=0, sidecar_wait_seconds=1)


def settle(rig: Rig) -> None:
    rig.tick()
    rig.tick(0.1)
    rig.tick(2)


def test_an_asset_is_never_a_job(rig: Rig) -> None:
    assert is_ignored("_logo.png") and is_ignored("_defaults.yaml")
    assert is_ignored("IMG.ref1._logo.png")  # a job's copy dragged back from archive/
    assert not is_ignored("logo.png")
    make_image(rig.inbox / "_logo.png")
    make_image(rig.inbox / "st" / "_pose.jpg")
    (rig.inbox / "_defaults.yaml").write_text('instruction: "everything"\n')
    for _ in range(3):
        settle(rig)
        rig.tick(60)
    assert rig.queued() == []
    assert files_under(rig.layout.failed) == []
    assert not any(rig.layout.outbox.glob("_*"))
    assert files_under(rig.inbox) == ["_defaults.yaml", "_logo.png", "st/_pose.jpg"]


def test_the_job_takes_its_own_copy_at_admission(rig: Rig) -> None:
    """Pass: the asset changes after admission, and the queued job keeps the bytes it took:
    the status's sha256, the copy beside the job, and the pixels its ticket carries."""
    logo = make_image(rig.inbox / "_logo.png", color=(0, 0, 255))
    original = sha256(logo)
    drop_pair(rig.inbox / "st", "shirt", images=["_logo.png"])
    settle(rig)
    assert rig.queued() == ["st/shirt"]
    assert files_under(rig.layout.pending) == [
        "st/shirt.jpg",
        "st/shirt.ref1._logo.png",
        "st/shirt.yaml",
    ]
    make_image(logo, color=(0, 255, 0))  # the asset changes while the job waits
    settle(rig)
    status = read_json(rig.layout.outbox / "st" / "shirt.status.json")
    assert status is not None
    assert status["references"] == [{"name": "_logo.png", "sha256": original}]
    assert sha256(rig.layout.pending / "st" / "shirt.ref1._logo.png") == original
    manifest = rig.spool.find("st/shirt")
    assert manifest is not None
    ticket = make_ticket(rig.config, rig.jobs, manifest)
    [reference] = ticket.reference_images()
    assert reference.getpixel((0, 0)) == (0, 0, 255)
    assert (rig.inbox / "_logo.png").exists()  # the asset is never moved


def test_the_nearest_asset_wins_and_copies_go_with_the_job(rig: Rig) -> None:
    """Pass: `_logo.png` in the job's folder wins over inbox/'s; both copies (two references,
    main image first) go to archive/ with the job; the assets stay for the next job."""
    make_image(rig.inbox / "_logo.png", color=(1, 1, 1))
    near = make_image(rig.inbox / "st" / "_logo.png", color=(2, 2, 2))
    pose = make_image(rig.inbox / "_pose.jpg", color=(3, 3, 3))
    drop_pair(rig.inbox / "st", "a", images=["_logo.png", "_pose.jpg"])
    settle(rig)
    manifest = rig.spool.find("st/a")
    assert manifest is not None
    assert [(r.name, r.sha256) for r in manifest.references] == [
        ("_logo.png", sha256(near)),
        ("_pose.jpg", sha256(pose)),
    ]
    claimed = rig.jobs.claim("w", "cpu")
    assert claimed is not None
    rig.jobs.record_claim(claimed.name)
    assert "st/a.ref2._pose.jpg" in files_under(rig.layout.processing)
    assert rig.jobs.complete("st/a", b"result", ".png")
    assert files_under(rig.layout.archive) == [
        "st/a.jpg",
        "st/a.ref1._logo.png",
        "st/a.ref2._pose.jpg",
        "st/a.yaml",
    ]
    assert files_under(rig.layout.pending) == files_under(rig.layout.processing) == []
    assert files_under(rig.inbox) == ["_logo.png", "_pose.jpg", "st/_logo.png"]


@pytest.mark.parametrize(
    ("make_asset", "expected"),
    [
        (None, "reference image _logo.png is missing: no _logo.png in inbox/st or a folder above"),
        (lambda p: p.write_text("not a picture"), "inbox/_logo.png cannot be used: "),
        (lambda p: make_image(p, size=(5000, 10)), "inbox/_logo.png cannot be used: "),
        (lambda p: p.write_bytes(b"\x89PNG" + b"\0" * 3000), "inbox/_logo.png cannot be used: "),
        (lambda p: os.symlink("/etc/hostname", p), "not a plain file"),
        (lambda p: make_image(p.with_suffix(".jpg")) and os.rename(p.with_suffix(".jpg"), p),
         "contains JPEG data but is named .png"),
    ],
)  # fmt: skip
def test_a_missing_or_bad_asset_is_invalid_sidecar_naming_it(
    rig: Rig, make_asset: Any, expected: str
) -> None:
    if make_asset is not None:
        make_asset(rig.inbox / "_logo.png")
    drop_pair(rig.inbox / "st", "a", images=["_logo.png"])
    settle(rig)
    reason = rig.reason("st/a")
    assert reason.startswith("invalid_sidecar: a.yaml: ")
    assert expected in reason
    assert files_under(rig.layout.failed) == ["st/a.jpg", "st/a.reason.txt", "st/a.yaml"]
    assert (rig.inbox / "_logo.png").exists() is (make_asset is not None)


def test_an_asset_over_the_file_size_limit_is_refused(tmp_path: Path) -> None:
    rig = Rig(tmp_path, settle_seconds=0, **{"limits.max_file_bytes": 20_000})
    (rig.inbox / "_big.png").write_bytes(os.urandom(30_000))
    drop_pair(rig.inbox, "a", images=["_big.png"])
    settle(rig)
    assert "inbox/_big.png cannot be used: it is 30,000 bytes" in rig.reason("a")


def test_a_failed_job_keeps_its_copies_and_a_retry_takes_the_asset_afresh(rig: Rig) -> None:
    logo = make_image(rig.inbox / "_logo.png", color=(9, 9, 9))
    drop_pair(rig.inbox, "a", images=["_logo.png"])
    settle(rig)
    assert rig.jobs.fail("a", Reason.edit_failed, "boom")
    assert files_under(rig.layout.failed) == [
        "a.jpg",
        "a.reason.txt",
        "a.ref1._logo.png",
        "a.yaml",
    ]
    make_image(logo, color=(8, 8, 8))
    ok, message = retry(rig.jobs, rig.config, rig.intake.layers, "a")
    assert ok, message
    assert files_under(rig.layout.failed) == []
    assert files_under(rig.layout.pending) == ["a.jpg", "a.ref1._logo.png", "a.yaml"]
    assert sha256(rig.layout.pending / "a.ref1._logo.png") == sha256(logo)
    rig.board.publish()
    status = read_json(rig.layout.outbox / "a.status.json")
    assert status is not None
    assert status["references"] == [{"name": "_logo.png", "sha256": sha256(logo)}]


def test_a_copy_name_too_long_for_the_filesystem_is_shortened(rig: Rig) -> None:
    asset = "_" + "l" * 200 + ".png"
    make_image(rig.inbox / asset)
    drop_pair(rig.inbox, "b" * 60, images=[asset])
    settle(rig)
    assert "b" * 60 + ".ref1._.png" in files_under(rig.layout.pending)


# --- end to end -------------------------------------------------------------------------------


def test_the_service_shows_references_in_the_status(tmp_path: Path) -> None:
    """Pass: a real service (identity editor) completes a job with two references; its status
    lists them with the sha256 of the assets as dropped; the copies are archived with it and
    the assets stay in inbox/ for the next job."""
    write_config(tmp_path)
    logo = make_image(tmp_path / "inbox" / "_logo.png", color=(0, 0, 200))
    pose = make_image(tmp_path / "inbox" / "st" / "_pose.jpg", color=(0, 200, 0))
    write_sidecar(tmp_path / "inbox" / "st" / "_defaults.yaml", images=["_logo.png", "_pose.jpg"])
    make_image(tmp_path / "inbox" / "st" / "one.jpg")
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        status = wait_for(lambda: has_status(tmp_path, "st/one", "completed", "failed"))
        assert status["status"] == "completed", service.log()
        assert status["references"] == [
            {"name": "_logo.png", "sha256": sha256(logo)},
            {"name": "_pose.jpg", "sha256": sha256(pose)},
        ]
        assert service.stop() == 0
    assert files_under(tmp_path / "archive") == [
        "st/one.jpg",
        "st/one.ref1._logo.png",
        "st/one.ref2._pose.jpg",
    ]
    assert files_under(tmp_path / "inbox") == ["_logo.png", "st/_defaults.yaml", "st/_pose.jpg"]


def test_cli_edit_takes_reference_images(tmp_path: Path) -> None:
    image = make_image(tmp_path / "photo.jpg")
    a = make_image(tmp_path / "logo.png")
    b = make_image(tmp_path / "pose.png")
    out = tmp_path / "out.png"
    common = ["edit", str(image), "-i", "x", "--editor", "identity", "--seed", "1"]
    done = hotfolder(*common, "--ref", str(a), "--ref", str(b), "-o", str(out))
    assert done.returncode == 0, done.stderr
    with Image.open(out) as result:
        assert result.size == (64, 48)

    three = hotfolder(*common, "--ref", str(a), "--ref", str(b), "--ref", str(a))
    assert three.returncode == 2
    assert "3 --ref images; edit-plus takes at most 2" in three.stderr

    (tmp_path / "bad.png").write_text("text")
    bad = hotfolder(*common, "--ref", str(tmp_path / "bad.png"))
    assert bad.returncode != 0
    assert "bad.png" in bad.stderr


def test_a_job_queued_with_references_fails_clearly_once_the_pipeline_is_edit(rig: Rig) -> None:
    make_image(rig.inbox / "_logo.png")
    drop_pair(rig.inbox, "a", images=["_logo.png"])
    settle(rig)
    manifest = rig.spool.find("a")
    assert manifest is not None
    config = rig.config.model_copy(
        update={"editor": rig.config.editor.model_copy(update={"pipeline": "edit"})}
    )
    with pytest.raises(Rejected) as info:
        make_ticket(config, rig.jobs, manifest)
    assert info.value.code is Reason.invalid_sidecar
    assert "pipeline: edit" in info.value.message


def test_references_travel_in_a_pickled_ticket_to_the_edit_request(tmp_path: Path) -> None:
    """Pass: decoded like the main image (an oversize one scaled to fit under
    `limits.oversize: fit`), in order, through a pickle as process and Ray slots send them."""
    rig = Rig(tmp_path, settle_seconds=0, **{"limits.oversize": "fit"})
    make_image(rig.inbox / "_logo.png", size=(30, 20), color=(0, 0, 255))
    make_image(rig.inbox / "_pose.png", size=(3000, 1500), color=(0, 255, 0))
    drop_pair(rig.inbox, "a", images=["_logo.png", "_pose.png"])
    settle(rig)
    manifest = rig.spool.find("a")
    assert manifest is not None
    ticket = pickle.loads(pickle.dumps(make_ticket(rig.config, rig.jobs, manifest)))
    request = render.request_of(ticket)
    assert [image.size for image in request.references] == [(30, 20), (2048, 1024)]
    assert request.references[0].getpixel((0, 0)) == (0, 0, 255)


def test_check_finds_the_assets_a_sidecar_names_as_admission_would(tmp_path: Path) -> None:
    write_config(tmp_path)
    inbox = tmp_path / "inbox"
    make_image(inbox / "_logo.png")
    write_sidecar(inbox / "shop" / "good.yaml", images=["_logo.png"])
    write_sidecar(inbox / "shop" / "lost.yaml", images=["_pose.png"])
    check = ["check", "--root", str(tmp_path)]
    good = hotfolder(*check, str(inbox / "shop" / "good.yaml"))
    assert good.returncode == 0, good.stderr
    assert "ok: " in good.stdout
    lost = hotfolder(*check, str(inbox / "shop" / "lost.yaml"))
    assert lost.returncode == 1
    assert "invalid_sidecar" in lost.stderr
    assert "reference image _pose.png is missing: no _pose.png in inbox/shop" in lost.stderr
    # A sidecar outside the root's inbox/ finds assets in its own folder only.
    outside = tmp_path / "draft"
    write_sidecar(outside / "x.yaml", images=["_logo.png"])
    away = hotfolder(*check, str(outside / "x.yaml"))
    assert away.returncode == 1 and "_logo.png is missing" in away.stderr
    make_image(outside / "_logo.png")
    assert hotfolder(*check, str(outside / "x.yaml")).returncode == 0
