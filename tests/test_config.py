"""Configuration: the shipped file matches the defaults; errors name the key; flags win."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import REPO, hotfolder

from hotfolder.config import Config, load_config
from hotfolder.errors import ConfigError


def test_the_shipped_config_is_valid_and_equals_the_defaults() -> None:
    shipped = load_config(REPO / "config" / "hotfolder.yaml", root=Path())
    assert shipped == Config(root=Path())


def test_unknown_and_bad_keys_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("max_pendin: 3\n")
    with pytest.raises(ConfigError, match="max_pendin"):
        load_config(path)
    path.write_text("limits:\n  max_dimension: -1\n")
    with pytest.raises(ConfigError, match=r"limits\.max_dimension"):
        load_config(path)
    path.write_text("default_preset: nope\n")
    with pytest.raises(ConfigError, match="nope"):
        load_config(path)
    path.write_text("editor:\n  device: cpu\n  offload: model\n")
    with pytest.raises(ConfigError, match="offload"):
        load_config(path)


def test_presets_in_the_file_add_to_the_builtins_and_flags_win(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("presets:\n  quick:\n    steps: 2\neditor:\n  name: qwen\n")
    config = load_config(path, overrides={"editor.name": "identity", "default_preset": "quick"})
    assert config.editor.name == "identity"
    assert config.default_preset == "quick"
    assert {"qwen-4step", "qwen-8step", "qwen-40step", "quick"} <= set(config.presets)


def test_cli_exit_codes_and_one_line_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("surprise: 1\n")
    result = hotfolder("check", "--config", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "surprise" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    for bad_usage in (["frobnicate"], ["run", "--bogus"], ["cancel"], []):
        result = hotfolder(*bad_usage, cwd=tmp_path)
        assert result.returncode == 2, bad_usage
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "--help" in result.stderr
    good = tmp_path / "ok.yaml"
    good.write_text('instruction: "Make it warmer"\nseed: 3\n')
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("instruction: 5\n")
    result = hotfolder("check", str(good), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "max_pending: 10" in result.stdout
    assert "ok: " in result.stdout
    result = hotfolder("check", str(good), str(wrong), cwd=tmp_path)
    assert result.returncode == 1
    assert "instruction" in result.stderr
    same = hotfolder("--help", cwd=tmp_path)
    assert same.returncode == 0
    for command in ("run", "status", "cancel", "retry", "pause", "resume", "history", "check"):
        assert command in same.stdout


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("max_pendng: 3\n", "config key `max_pendng` is not known; did you mean `max_pending`?"),
        ("editor:\n  nmae: qwen\n", "config key `editor.nmae` is not known; did you mean `name`?"),
        ("presets:\n  x:\n    steps: 2\n    stpes: 3\n", "did you mean `steps`?"),
        ("limits:\n\tmax_steps: 3\n", "line 2 is indented with a tab"),
        ("editor:\n  model: a: b\n", 'put the whole value in double quotes: model: "a: b"'),
    ],
)
def test_config_mistakes_are_plain_sentences(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_a_utf16_config_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("max_pending: 3\r\n".encode("utf-16"))
    assert load_config(path).max_pending == 3


def test_the_readme_links_only_to_files_in_the_project() -> None:
    import re

    text = (REPO / "README.md").read_text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    assert "docs/contract.md" in links
    for link in links:
        if "://" not in link:
            assert (REPO / link).resolve().is_relative_to(REPO.resolve()), link
            assert (REPO / link).exists(), link


def test_check_reads_a_sidecar_with_the_defaults_of_its_folders(tmp_path: Path) -> None:
    from support import write_config

    write_config(tmp_path)
    shoot = tmp_path / "inbox" / "studio" / "shoot"
    shoot.mkdir(parents=True)
    (tmp_path / "inbox" / "studio" / "_defaults.yaml").write_text("instruction: from defaults\n")
    (shoot / "x.yaml").write_text("seed: 3\n")
    result = hotfolder("check", "--root", str(tmp_path), str(shoot / "x.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"ok: {shoot / 'x.yaml'} (preset qwen-4step, instruction 'from defaults')" in (
        result.stdout
    )
    # Beside a folder with no instruction anywhere, the sidecar alone is still not enough.
    alone = tmp_path / "inbox" / "elsewhere"
    alone.mkdir()
    (alone / "y.yaml").write_text("seed: 3\n")
    result = hotfolder("check", "--root", str(tmp_path), str(alone / "y.yaml"), cwd=tmp_path)
    assert result.returncode == 1
    assert "instruction" in result.stderr


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("max_pending: true\n", "max_pending must be a number, not true"),
        ("settle_seconds: yes\n", "settle_seconds must be a number, not true"),
        ("limits:\n  max_dimension: off\n", "max_dimension must be a number, not false"),
    ],
)
def test_a_yes_or_no_where_a_number_belongs_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    # YAML reads true/yes/on as a boolean, which would otherwise count as 1.
    path = tmp_path / "hotfolder.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_a_key_left_empty_takes_its_default_and_numbers_are_finite(tmp_path: Path) -> None:
    # Every key is optional (SPEC); one whose lines are all commented out is not given.
    path = tmp_path / "hotfolder.yaml"
    path.write_text("notify:\n  # allowed_hosts: [hooks.lan]\nlimits:\nmax_pending:\n")
    config = load_config(path)
    assert (config.max_pending, config.limits.max_dimension, config.notify) == (
        10,
        2048,
        load_config(None).notify,
    )
    path.write_text("settle_seconds: .inf\n")
    with pytest.raises(ConfigError, match=r"settle_seconds.*finite"):
        load_config(path)
