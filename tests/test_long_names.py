"""Names near the filesystem's limit of 255 bytes (issue 14): a 240-character drop is carried
end to end; one whose files could not be named ends in failed/ under a shortened name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import files_under, has_status, hotfolder, make_image, write_config, write_sidecar
from test_intake import Rig

from hotfolder import fsops
from hotfolder.layout import fits, shortened


def test_a_temporary_name_never_lengthens_a_name_past_the_limit(tmp_path: Path) -> None:
    long = "x" * 240 + ".job.json"
    assert len(fsops.temp_name(long)) <= fsops.NAME_MAX_BYTES
    assert fsops.is_temp_name(fsops.temp_name(long))
    assert fsops.temp_writer_pid(fsops.temp_name(long)) == os.getpid()
    assert "short.json" in fsops.temp_name("short.json")  # short names stay readable
    fsops.write_atomic(tmp_path / long, b"{}")
    assert os.listdir(tmp_path) == [long]


def test_shortened_names_fit_and_stay_unique() -> None:
    one, two = "st/" + "é" * 125 + "a", "st/" + "é" * 125 + "b"
    assert not fits(one)
    assert shortened(one) != shortened(two)
    for name in (shortened(one), shortened(two), shortened("z" * 250)):
        assert fits(name + "~99")
        assert name.encode("utf-8")  # never ends inside a character
    assert shortened(one).startswith("st/éé")


def test_a_240_character_drop_is_a_job(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    name = "P" * 240
    make_image(rig.inbox / f"{name}.jpg")
    write_sidecar(rig.inbox / f"{name}.yaml")
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == [name]
    assert (rig.layout.outbox / f"{name}.status.json").exists()


@pytest.mark.parametrize("length", [244, 250])
def test_a_name_that_cannot_be_carried_fails_under_a_shortened_name(
    tmp_path: Path, length: int
) -> None:
    rig = Rig(tmp_path)
    name = "L" * length
    (rig.inbox / "st").mkdir()
    make_image(rig.inbox / "st" / f"{name}.jpg")
    write_sidecar(rig.inbox / "st" / f"{name}.yaml")
    rig.tick()
    rig.tick(2.5)
    assert rig.queued() == []
    short = shortened(f"st/{name}")
    assert sorted(files_under(rig.layout.failed)) == sorted(
        f"{short}{ending}" for ending in (".jpg", ".yaml", ".reason.txt")
    )
    reason = (rig.layout.failed / f"{short}.reason.txt").read_text()
    assert reason.startswith("unsupported_type: the name is too long for the filesystem")
    assert f"is {length} bytes" in reason and "at most 243 bytes" in reason
    assert "rename the image" in reason
    status = has_status(tmp_path, short, "failed")
    assert status is not None and status["source"] == f"inbox/st/{name}.jpg"
    assert files_under(rig.inbox) == []


def test_a_long_name_rejected_for_another_reason_says_both(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    name = "B" * 248
    write_sidecar(rig.inbox / f"{name}.yaml", instruction=5)
    make_image(rig.inbox / f"{name}.jpg")
    rig.tick()
    rig.tick(2.5)
    reason = (rig.layout.failed / f"{shortened(name)}.reason.txt").read_text()
    assert reason.startswith("invalid_sidecar: ")
    assert "is 248 bytes" in reason


@pytest.mark.slow
def test_the_service_carries_a_240_character_name_end_to_end(tmp_path: Path) -> None:
    write_config(tmp_path)
    name = "Q" * 240
    make_image(tmp_path / "inbox" / f"{name}.jpg")
    write_sidecar(tmp_path / "inbox" / f"{name}.yaml")
    result = hotfolder("run", "--once", "--root", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ENAMETOOLONG" not in result.stderr and "too long" not in result.stderr
    status = has_status(tmp_path, name, "completed")
    assert status is not None
    assert (tmp_path / "outbox" / f"{name}.png").exists()
    assert sorted(files_under(tmp_path / "archive")) == [f"{name}.jpg", f"{name}.yaml"]
