"""Roots and command-line edges (SPEC: "Roots", "Command line"): one line, the same status
for the same cause in every command, nothing built where the user did not mean it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support import REPO, hotfolder, make_image, write_config

from hotfolder.config import Config

pytestmark = pytest.mark.slow

TREE_COMMANDS = [
    ["status"],
    ["pause"],
    ["resume"],
    ["history"],
    ["cancel", "x"],
    ["retry", "x"],
    ["check"],
]


def one_line_error(result: object, *expected: str) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 2, (result.returncode, stderr)  # type: ignore[attr-defined]
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert "Traceback" not in stderr
    for text in expected:
        assert text in stderr, stderr
    return str(stderr)


@pytest.mark.parametrize("command", TREE_COMMANDS, ids=lambda c: c[0])
def test_every_command_but_run_wants_a_hotfolder_tree(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "typo"
    one_line_error(hotfolder(*command, "--root", str(missing), cwd=tmp_path), "does not exist")
    assert not missing.exists()  # pause used to build typo/.hotfolder/PAUSE
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    one_line_error(hotfolder(*command, "--root", str(a_file), cwd=tmp_path), "is a file")
    empty = tmp_path / "empty"
    empty.mkdir()
    one_line_error(
        hotfolder(*command, "--root", str(empty), cwd=tmp_path),
        "is not a hotfolder tree (it has no .hotfolder/)",
    )
    assert list(empty.iterdir()) == []


def test_run_sets_up_a_root_meant_for_it_and_refuses_others(tmp_path: Path) -> None:
    identity = ["--editor", "identity", "--once"]
    missing = tmp_path / "new"
    one_line_error(hotfolder("run", "--root", str(missing), *identity), "--init")
    assert not missing.exists()
    result = hotfolder("run", "--root", str(missing), "--init", *identity, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert {"inbox", "outbox", "failed", ".hotfolder"} <= {p.name for p in missing.iterdir()}
    assert hotfolder("status", "--root", str(missing), cwd=tmp_path).returncode == 0

    empty = tmp_path / "empty"
    empty.mkdir()
    assert hotfolder("run", "--root", str(empty), *identity, cwd=tmp_path).returncode == 0
    assert (empty / "inbox").is_dir()

    busy = tmp_path / "home"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    one_line_error(hotfolder("run", "--root", str(busy), *identity), "holds other files")
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]
    result = hotfolder("run", "--root", str(busy), "--init", *identity, cwd=tmp_path)
    assert result.returncode == 0, result.stderr

    only_inbox = tmp_path / "share"
    (only_inbox / "inbox").mkdir(parents=True)
    assert hotfolder("run", "--root", str(only_inbox), *identity, cwd=tmp_path).returncode == 0

    # A config file says the folder is meant for us, wherever in it the file is.
    for config in ("hotfolder.yaml", "config/test.yaml", "settings/mine.yml"):
        holder = tmp_path / config.replace("/", "-")
        (holder / config).parent.mkdir(parents=True)
        (holder / config).write_text("settle_seconds: 0.2\n")
        given = ["--config", str(holder / config)] if config.startswith("settings") else []
        result = hotfolder("run", "--root", str(holder), *given, *identity, cwd=tmp_path)
        assert result.returncode == 0, (config, result.stderr)
        assert (holder / "inbox").is_dir()

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    one_line_error(hotfolder("run", "--root", str(a_file), *identity), "is a file")


def test_a_bad_preset_flag_is_blamed_on_the_flag(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = hotfolder("run", "--root", str(tmp_path), "--preset", "bad", "--once")
    message = one_line_error(result, "--preset 'bad' is not a configured preset", "qwen-4step")
    assert str(config) not in message
    image = make_image(tmp_path / "a.png")
    result = hotfolder("edit", str(image), "-i", "x", "--preset", "bad", "--config", str(config))
    one_line_error(result, "--preset 'bad' is not a configured preset")


def test_a_missing_model_is_exit_2_for_run_and_edit_alike(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, editor={"name": "qwen", "model": str(tmp_path / "nope"), "device": "cpu"}
    )
    image = make_image(tmp_path / "a.png")
    edit = hotfolder("edit", str(image), "-i", "x", "--config", str(config), cwd=tmp_path)
    run = hotfolder("run", "--root", str(tmp_path), "--once", cwd=tmp_path)
    for result in (edit, run):
        assert result.returncode == 2, result.stderr
        assert "editor.model folder" in result.stderr
    # SPEC: "a one-line message on stderr that says what to change".
    assert len(edit.stderr.strip().splitlines()) == 1, edit.stderr


def _keys(model: type, prefix: str = "") -> list[str]:
    """Every config key as a dotted path; a preset's keys as `presets.*.KEY`."""
    from typing import get_args, get_origin

    from pydantic import BaseModel

    keys = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        path = f"{prefix}{name}"
        keys.append(path)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys += _keys(annotation, path + ".")
        elif get_origin(annotation) is dict:
            inner = get_args(annotation)[1]
            keys += _keys(inner, path + ".*.")
    return keys


def test_every_config_key_is_documented_in_the_shipped_file() -> None:
    text = (REPO / "config" / "hotfolder.yaml").read_text()
    shipped = yaml.safe_load(text)
    missing = []
    for key in _keys(Config):
        if ".*." in key:
            # A preset's keys: set in the shipped presets or named in the comment above them.
            if key.rpartition(".")[2] not in text:
                missing.append(key)
            continue
        node = shipped
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                missing.append(key)
                break
            node = node[part]
    assert missing == [], f"add these to config/hotfolder.yaml with a comment: {missing}"
