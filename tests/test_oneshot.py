"""`hotfolder edit` without the CLI: edit_one with the identity editor, and once with the tiny Qwen."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support import hotfolder

from hotfolder.config import Config, EditorConfig, Preset
from hotfolder.errors import ConfigError
from hotfolder.images import read_metadata
from hotfolder.oneshot import default_output, edit_one


def identity_config() -> Config:
    return Config(editor=EditorConfig(name="identity"))


def drop(folder: Path, name: str = "photo.jpg", size: tuple[int, int] = (40, 30)) -> Path:
    path = folder / name
    Image.new("RGB", size, (10, 120, 200)).save(path)
    return path


def test_writes_the_result_next_to_the_input_with_its_metadata(tmp_path: Path) -> None:
    image = drop(tmp_path)
    stream = io.StringIO()
    out = edit_one(
        identity_config(), image, " make it red ", seed=42, preset=None, out=None, stream=stream
    )
    assert out == tmp_path / "photo-edited.png"
    data = out.read_bytes()
    with Image.open(io.BytesIO(data)) as result:
        assert (result.format, result.size) == ("PNG", (40, 30))
    metadata = read_metadata(data)
    assert metadata["instruction"] == "make it red"
    assert metadata["seed"] == "42"
    assert metadata["preset"] == "qwen-4step"
    log = stream.getvalue()
    assert "seed 42" in log
    assert "4/4 steps" in log
    assert log.endswith(f"wrote {out}\n")


def test_never_overwrites_an_earlier_result(tmp_path: Path) -> None:
    image = drop(tmp_path)
    first = edit_one(
        identity_config(), image, "x", seed=1, preset=None, out=None, stream=io.StringIO()
    )
    assert default_output(image) == tmp_path / "photo-edited-2.png"
    second = edit_one(
        identity_config(), image, "x", seed=1, preset=None, out=None, stream=io.StringIO()
    )
    assert (first.name, second.name) == ("photo-edited.png", "photo-edited-2.png")


def test_output_format_follows_the_suffix_and_a_seed_is_drawn(tmp_path: Path) -> None:
    out = tmp_path / "out" / "result.JPG"
    stream = io.StringIO()
    edit_one(
        identity_config(),
        drop(tmp_path),
        "x",
        seed=None,
        preset="qwen-40step",
        out=out,
        stream=stream,
    )
    with Image.open(out) as result:
        assert result.format == "JPEG"
    seed = read_metadata(out.read_bytes())["seed"]
    assert f"seed {seed}" in stream.getvalue()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"preset": "nope"}, "preset 'nope' is not configured"),
        ({"instruction": "   "}, "instruction must be 1..500"),
        ({"seed": -1}, "--seed must be"),
        ({"out": Path("result.gif")}, "end it in .png"),
        ({"out": Path(__file__) / "out.png"}, "test_oneshot.py is not a folder"),
    ],
)
def test_bad_arguments_are_config_errors(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"instruction": "x", "seed": 1, "preset": None, "out": None}
    arguments.update(changes)
    with pytest.raises(ConfigError, match=message):
        edit_one(identity_config(), drop(tmp_path), stream=io.StringIO(), **arguments)


@pytest.mark.slow
def test_runs_the_tiny_qwen_pipeline(tmp_path: Path, tiny_qwen_model: Path) -> None:
    config = Config(
        editor=EditorConfig(
            model=str(tiny_qwen_model), device="cpu", dtype="float32", max_pixels=64 * 64
        ),
        presets={"tiny": Preset(steps=2, true_cfg_scale=1.0)},
        default_preset="tiny",
    )
    stream = io.StringIO()
    image = drop(tmp_path, size=(50, 20))
    out = edit_one(config, image, "x", seed=3, preset=None, out=None, stream=stream)
    with Image.open(out) as result:
        assert result.size == (50, 20)
    assert read_metadata(out.read_bytes())["model"] == str(tiny_qwen_model)
    assert "2/2 steps" in stream.getvalue()


def test_a_result_that_cannot_be_written_is_one_line_and_exit_1(tmp_path: Path) -> None:
    image = drop(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "out.png").mkdir()  # in the way: the rename cannot replace a folder
    result = hotfolder(
        "edit", str(image), "-i", "x", "--editor", "identity", "-o",
        str(tmp_path / "full" / "out.png"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"hotfolder: cannot write {tmp_path / 'full' / 'out.png'}: "), last
    assert "Traceback" not in result.stderr
    result = hotfolder(
        "edit", str(image), "-i", "x", "--editor", "identity", "-o",
        str(image / "out.png"), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"hotfolder: -o {image / 'out.png'}: {image} is not a folder; write the result into one"
    ]
