"""Batches of atomic writes and moves: the durability shared, every file whole or untouched."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from support import record_fsyncs

from hotfolder import fsops


def test_a_batch_writes_every_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    files = [
        (tmp_path / ("sub" if i % 3 else "") / f"f{i}.json", f"data {i}\n".encode() * (i + 1))
        for i in range(fsops.FSYNC_THREADS * 8 + 5)  # several files per thread
    ]
    (tmp_path / "f0.json").write_text("old")
    fsops.write_many(files)
    for path, data in files:
        assert path.read_bytes() == data
    assert not list(tmp_path.rglob(".hf-*"))


def test_a_batch_cut_by_a_refusing_disk_leaves_each_file_whole_or_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [tmp_path / f"f{i}.json" for i in range(5)]
    for path in paths:
        path.write_text("old")
    real_replace = os.replace

    def refuse_the_fourth(src: str | Path, dst: str | Path) -> None:
        if Path(dst).name == "f3.json":
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse_the_fourth)
    with pytest.raises(OSError, match="Input/output"):
        fsops.write_many([(path, b"new") for path in paths])
    assert [p.read_text() for p in paths] == ["new", "new", "new", "old", "old"]
    assert not list(tmp_path.rglob(".hf-*"))


def test_a_staged_batch_renames_only_what_is_kept(tmp_path: Path) -> None:
    paths = [tmp_path / f"f{i}.json" for i in range(4)]
    staged = fsops.stage([(path, f"{path.name}".encode()) for path in paths])
    assert [p for p in paths if p.exists()] == []  # nothing in place before the commit
    staged.commit(keep=lambda index: index != 1)
    assert [p.name for p in paths if p.exists()] == ["f0.json", "f2.json", "f3.json"]
    assert (tmp_path / "f2.json").read_text() == "f2.json"
    assert not list(tmp_path.rglob(".hf-*"))


def test_moves_in_a_batch_never_overwrite_and_stop_at_the_first_refusal(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.jpg").write_text(name)
    target = tmp_path / "to"
    target.mkdir()
    (target / "b.jpg").write_text("someone else's")
    moves = [(tmp_path / f"{name}.jpg", target / f"{name}.jpg") for name in ("a", "b", "c")]
    with pytest.raises(FileExistsError):
        fsops.move_many(moves)
    assert (target / "a.jpg").read_text() == "a"
    assert (target / "b.jpg").read_text() == "someone else's"
    assert (tmp_path / "b.jpg").read_text() == "b"
    assert (tmp_path / "c.jpg").exists() and not (target / "c.jpg").exists()


def test_fsyncs_issued_together_all_happen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting)
    fds = [os.open(tmp_path / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o644) for i in range(40)]
    try:
        fsops.fsync_all(fds)
    finally:
        for fd in fds:
            os.close(fd)
    assert sorted(synced) == sorted(fds)


def test_a_move_makes_its_missing_folder_and_never_replaces_a_file_or_a_link(
    tmp_path: Path,
) -> None:
    (tmp_path / "a.jpg").write_text("a")
    fsops.move(tmp_path / "a.jpg", tmp_path / "new" / "deeper" / "a.jpg")
    assert (tmp_path / "new" / "deeper" / "a.jpg").read_text() == "a"
    (tmp_path / "b.jpg").write_text("b")
    (tmp_path / "to").mkdir()
    (tmp_path / "to" / "b.jpg").symlink_to(tmp_path / "nowhere")  # a dangling link counts
    with pytest.raises(FileExistsError):
        fsops.move(tmp_path / "b.jpg", tmp_path / "to" / "b.jpg")
    assert (tmp_path / "b.jpg").read_text() == "b"
    with pytest.raises(FileNotFoundError):
        fsops.move(tmp_path / "gone.jpg", tmp_path / "elsewhere" / "gone.jpg")
    assert not (tmp_path / "elsewhere").exists()  # no folder made for a source that is gone


def test_steps_skip_a_vanished_source_only_if_present_is_asked_and_say_their_folders(
    tmp_path: Path,
) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_text("a")
    steps = fsops.Steps(durable=False)
    steps.write(tmp_path / "jobs" / "a.json", b"{}")
    steps.move(tmp_path / "in" / "gone.jpg", tmp_path / "out" / "gone.jpg", if_present=True)
    steps.move(tmp_path / "in" / "a.jpg", tmp_path / "out" / "a.jpg")
    steps.commit()
    assert (tmp_path / "out" / "a.jpg").read_text() == "a"
    assert (tmp_path / "jobs" / "a.json").read_bytes() == b"{}"
    # Each folder that gained or lost a file, once, for the caller to fsync (durable=False).
    assert sorted(steps.folders) == sorted([tmp_path / "jobs", tmp_path / "out", tmp_path / "in"])
    strict = fsops.Steps()
    strict.move(tmp_path / "in" / "gone.jpg", tmp_path / "out" / "gone.jpg")
    with pytest.raises(FileNotFoundError):
        strict.commit()


def test_json_is_written_indented_in_utf8_with_a_newline_as_json_dumps_would() -> None:
    payload = {
        "name": 'Café ✓ "quoted"',
        "position": 3,
        "progress": None,
        "wait": 12.5,
        "files": ["a.jpg", "b.yaml"],
        "empty": {},
        "done": True,
    }
    written = fsops.json_bytes(payload)
    assert written == (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode()
    assert json.loads(written) == payload


def test_a_step_file_the_service_can_do_without_is_written_whole_but_never_waited_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced = record_fsyncs(monkeypatch)
    steps = fsops.Steps()
    steps.write(tmp_path / "out" / "a.jpg", b"result")
    steps.write(tmp_path / "thumbs" / "a.after.jpg", b"thumb", optional=True, durable=False)
    steps.commit()
    assert (tmp_path / "thumbs" / "a.after.jpg").read_bytes() == b"thumb"
    assert not any("thumbs" in path for path in synced)  # neither the file nor its folder
    assert any(path.endswith(".tmp") and "/out/" in path for path in synced)
    assert str(tmp_path / "out") in synced
    assert steps.folders == [tmp_path / "out"]
