"""Sidecar parsing, per-layer checks and defaults merging (SPEC: "A drop", "Sidecar keys", "Limits")."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from hotfolder import sidecar
from hotfolder.config import Config, Limits
from hotfolder.errors import Reason, Rejected
from hotfolder.sidecar import (
    DEFAULTS_NAME,
    MAX_DEPTH,
    SIDECAR_SUFFIXES,
    JobSpec,
    OutputOptions,
    check_layer,
    has_instruction,
    parse_yaml,
    read_layer,
    resolve,
)

MAX_BYTES = Limits().max_sidecar_bytes
CONFIG = Config()


def parse(text: str | bytes, source: str = "IMG_0042.yaml") -> dict[str, Any]:
    data = text.encode() if isinstance(text, str) else text
    return parse_yaml(data, source=source, max_bytes=MAX_BYTES)


def rejected_parse(text: str | bytes) -> str:
    with pytest.raises(Rejected) as info:
        parse(text)
    assert info.value.code is Reason.invalid_sidecar
    assert info.value.message.startswith("IMG_0042.yaml: ")
    return info.value.message


def one(mapping: dict[str, Any], source: str = "IMG_0042.yaml") -> JobSpec:
    return resolve([(source, mapping)], config=CONFIG)


def rejected(layers: list[tuple[str, dict[str, Any]]], config: Config = CONFIG) -> str:
    with pytest.raises(Rejected) as info:
        resolve(layers, config=config)
    assert info.value.code is Reason.invalid_sidecar
    return info.value.message


def test_names() -> None:
    assert SIDECAR_SUFFIXES == (".yaml", ".yml")
    assert DEFAULTS_NAME == "_defaults.yaml"


# --- parse_yaml ------------------------------------------------------------------------------


def test_full_sidecar_parses_and_resolves() -> None:
    text = """\
instruction: "Make the sky blue"
seed: 42
preset: qwen-40step
negative_prompt: ""
true_cfg_scale: 4.0
steps: 8
priority: high
output:
  format: webp
  quality: 80
  size: model
"""
    spec = one(parse(text))
    assert spec == JobSpec(
        instruction="Make the sky blue",
        seed=42,
        preset="qwen-40step",
        negative_prompt="",
        true_cfg_scale=4.0,
        steps=8,
        priority="high",
        output=OutputOptions(format="webp", quality=80, size="model"),
    )


def test_minimal_sidecar_gets_defaults() -> None:
    spec = one(parse('instruction: "Make the sky blue"\n'))
    assert spec.preset == CONFIG.default_preset
    assert spec.seed is None
    assert spec.steps is None
    assert spec.true_cfg_scale is None
    assert spec.negative_prompt is None
    assert spec.priority == "normal"
    assert spec.output == OutputOptions(format="png", quality=92, size="input")


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n", "--- \n...\n"])
def test_empty_document_is_empty_mapping(text: str) -> None:
    assert parse(text) == {}


def test_unicode_and_byte_order_mark() -> None:
    assert parse("\ufeffinstruction: Himmel blau, 空を青く\n".encode()) == {
        "instruction": "Himmel blau, 空を青く"
    }


def test_invalid_utf8_rejected() -> None:
    message = rejected_parse(b"instruction: caf\xe9\n")
    assert "not valid UTF-8 text (bad byte at offset 16); save it as UTF-8" in message


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-8-sig"])
def test_utf16_and_utf32_are_read_as_yaml_allows(encoding: str) -> None:
    # PowerShell 5 (`"instruction: x" > a.yaml`) writes UTF-16 LE with a byte-order mark.
    data = "instruction: Café\r\nseed: 3\r\n".encode(encoding)
    assert parse(data) == {"instruction": "Café", "seed": 3}


def test_broken_utf16_says_so() -> None:
    message = rejected_parse(b"\xff\xfei\x00n\x00\x00\xd8")  # a lone surrogate
    assert "not valid UTF-16 text" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "instruction: Make the sky: blue\nseed: 3\n",
            'line 1: the value of `instruction` holds ": ", which YAML reads as the start of '
            'another key; put the whole value in double quotes: instruction: "Make the sky: blue"',
        ),
        (
            "instruction: x\noutput:\n\tformat: png\n",
            "line 3 is indented with a tab; YAML indents with spaces only",
        ),
        (
            'seed: 3\ninstruction: "Make the sky blue\npreset: qwen-4step\n',
            'line 2: the quote " opened there is never closed; end the value with " on the same',
        ),
        (
            "instruction: x\n  seed: 3\n",
            "line 2 is indented more than the key above it; start `seed` in the same column",
        ),
        ('instruction: "Make" the sky\n', "line 1: more text follows a closing quote"),
    ],
)
def test_common_yaml_mistakes_are_plain_sentences(text: str, expected: str) -> None:
    message = rejected_parse(text)
    assert expected in message
    assert "mapping values" not in message and "scanning" not in message


def test_a_list_where_a_value_belongs_names_the_line() -> None:
    layer = parse("seed: 3\ninstruction:\n  - make it blue\n  - and red\n")
    message = rejected([("a.yaml", layer)])
    assert message.startswith("a.yaml: sidecar key `instruction` (line 2) holds a list")


@pytest.mark.parametrize(
    ("mapping", "meant"),
    [
        ({"sed": 1}, "seed"),
        ({"instrution": "x"}, "instruction"),
        ({"output": {"fromat": "png"}}, "format"),
    ],
)
def test_unknown_keys_get_a_did_you_mean(mapping: dict[str, Any], meant: str) -> None:
    message = rejected([("a.yaml", {"instruction": "x", **mapping})])
    assert f"is not known; did you mean `{meant}`? Otherwise remove it" in message


def test_an_unknown_key_far_from_any_gets_no_guess() -> None:
    message = rejected([("a.yaml", {"instruction": "x", "zzzzzz": 1})])
    assert "`zzzzzz` is not known; check its spelling or remove it" in message


@pytest.mark.parametrize(
    ("text", "kind"),
    [("- instruction: x\n- seed: 1\n", "a list"), ("Make the sky blue\n", "a single value")],
)
def test_document_must_be_a_mapping(text: str, kind: str) -> None:
    message = rejected_parse(text)
    assert kind in message
    assert "instruction" in message


def test_multiple_documents_rejected() -> None:
    message = rejected_parse("instruction: a\n---\ninstruction: b\n")
    assert "more than one YAML document" in message


def test_byte_cap() -> None:
    data = b"instruction: " + b"x" * 200 + b"\n"
    with pytest.raises(Rejected) as info:
        parse_yaml(data, source="IMG_0042.yaml", max_bytes=100)
    assert info.value.code is Reason.invalid_sidecar
    assert "the limit is 100" in info.value.message
    assert parse_yaml(data, source="IMG_0042.yaml", max_bytes=len(data))["instruction"]


def test_plain_alias_rejected() -> None:
    message = rejected_parse("instruction: &text Make the sky blue\nnegative_prompt: *text\n")
    assert message.startswith(
        "IMG_0042.yaml: YAML anchors and aliases are not allowed; write each value out"
    )
    assert "line 1" in message


def test_anchor_alone_rejected() -> None:
    assert "anchors and aliases" in rejected_parse("output: &o {format: png}\n")


def test_merge_key_rejected() -> None:
    assert "anchors and aliases" in rejected_parse(
        "base: &b {seed: 1}\noutput:\n  <<: *b\n  format: png\n"
    )


def test_billion_laughs_rejected_quickly() -> None:
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, 10):
        refs = ",".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    started = time.perf_counter()
    message = rejected_parse("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 1.0
    assert "anchors and aliases" in message


@pytest.mark.parametrize("flow", [True, False])
def test_deep_nesting_rejected(flow: bool) -> None:
    if flow:
        text = "[" * 20_000 + "]" * 20_000 + "\n"
    else:
        depth = 200  # block style grows quadratically; 200 levels still fit the byte cap
        text = "".join(f"{' ' * level}k{level}:\n" for level in range(depth)) + " " * depth + "x\n"
    assert len(text) < MAX_BYTES
    started = time.perf_counter()
    message = rejected_parse(text)
    assert time.perf_counter() - started < 2.0
    assert f"deeper than {MAX_DEPTH}" in message


def test_nesting_up_to_the_cap_is_fine() -> None:
    text = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert "a" in parse(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("instruction: a\ninstruction: b\n", "`instruction` appears twice"),
        ("1: x\n", "is not a name"),
        ("yes: x\n", "is not a name"),
        ("? [a, b]\n: x\n", "is not a name"),
        ("instruction: [unclosed\n", "not valid YAML at line"),
        ("instruction:\tx\n\t- y\n", "line 1 has a tab at column 13 where YAML wants a space"),
        ("seed: !!python/object/apply:os.system ['true']\n", "!!"),
        ("seed: " + "9" * 5000 + "\n", "cannot be read"),
        ("instruction: 2024-13-45\n", "cannot be read"),
        ("instruction: \x00\n", "holds zero bytes (NUL), as one still being written does"),
    ],
)
def test_malformed_yaml_rejected(text: str, expected: str) -> None:
    assert expected in rejected_parse(text)


# --- read_layer ------------------------------------------------------------------------------


def test_read_layer_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0042.yaml"
    path.write_text("instruction: Make the sky blue\nseed: 7\n", encoding="utf-8")
    assert read_layer(path, max_bytes=MAX_BYTES) == {"instruction": "Make the sky blue", "seed": 7}


def test_read_layer_names_the_source(tmp_path: Path) -> None:
    path = tmp_path / DEFAULTS_NAME
    path.write_text("seed: [\n", encoding="utf-8")
    with pytest.raises(Rejected) as info:
        read_layer(path, max_bytes=MAX_BYTES, source="station-3/_defaults.yaml")
    assert info.value.message.startswith("station-3/_defaults.yaml: not valid YAML")


def test_read_layer_over_size(tmp_path: Path) -> None:
    path = tmp_path / "IMG_0042.yaml"
    path.write_bytes(b"instruction: " + b"x" * 1000)
    with pytest.raises(Rejected) as info:
        read_layer(path, max_bytes=100)
    assert info.value.code is Reason.invalid_sidecar
    assert "IMG_0042.yaml" in info.value.message
    assert "limit is 100" in info.value.message


def test_read_layer_refuses_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text("instruction: x\n", encoding="utf-8")
    link = tmp_path / "IMG_0042.yaml"
    link.symlink_to(real)
    with pytest.raises(Rejected) as info:
        read_layer(link, max_bytes=MAX_BYTES)
    assert info.value.code is Reason.invalid_sidecar
    assert "not a plain file" in info.value.message


@pytest.mark.timeout(10)
def test_read_layer_refuses_fifo_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "IMG_0042.yaml"
    os.mkfifo(fifo)
    with pytest.raises(Rejected) as info:
        read_layer(fifo, max_bytes=MAX_BYTES)
    assert info.value.code is Reason.invalid_sidecar


def test_read_layer_refuses_directory(tmp_path: Path) -> None:
    folder = tmp_path / "IMG_0042.yaml"
    folder.mkdir()
    with pytest.raises(Rejected) as info:
        read_layer(folder, max_bytes=MAX_BYTES)
    assert info.value.code is Reason.invalid_sidecar


def test_read_layer_missing_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_layer(tmp_path / "gone.yaml", max_bytes=MAX_BYTES)


# --- keys: valid and invalid -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("mapping", "field", "expected"),
    [
        ({"seed": 0}, "seed", 0),
        ({"seed": 2**63 - 1}, "seed", 2**63 - 1),
        ({"preset": "qwen-8step"}, "preset", "qwen-8step"),
        ({"negative_prompt": "blurry"}, "negative_prompt", "blurry"),
        ({"negative_prompt": ""}, "negative_prompt", ""),
        ({"true_cfg_scale": 0}, "true_cfg_scale", 0.0),
        ({"true_cfg_scale": 4}, "true_cfg_scale", 4.0),
        ({"true_cfg_scale": 100.0}, "true_cfg_scale", 100.0),
        ({"steps": 1}, "steps", 1),
        ({"steps": 50}, "steps", 50),
        ({"priority": "high"}, "priority", "high"),
        ({"priority": "normal"}, "priority", "normal"),
    ],
)
def test_valid_values(mapping: dict[str, Any], field: str, expected: object) -> None:
    spec = one({"instruction": "x", **mapping})
    assert getattr(spec, field) == expected
    assert type(getattr(spec, field)) is type(expected)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ({"format": "png"}, OutputOptions(format="png")),
        ({"format": "jpeg", "quality": 1}, OutputOptions(format="jpeg", quality=1)),
        ({"format": "webp", "quality": 100}, OutputOptions(format="webp", quality=100)),
        ({"size": "model"}, OutputOptions(size="model")),
        ({"size": "input"}, OutputOptions(size="input")),
        ({}, OutputOptions()),
    ],
)
def test_valid_output(output: dict[str, Any], expected: OutputOptions) -> None:
    assert one({"instruction": "x", "output": output}).output == expected


def test_instruction_is_stripped() -> None:
    assert one({"instruction": "  Make the sky blue\n"}).instruction == "Make the sky blue"


@pytest.mark.parametrize(
    ("mapping", "key", "hint"),
    [
        ({"instrcution": "x"}, "instrcution", "is not known"),
        ({"output": {"fromat": "png"}}, "output.fromat", "is not known"),
        ({"instruction": 42}, "instruction", "valid string"),
        ({"instruction": ["a"]}, "instruction", "holds a list, but takes one value"),
        ({"instruction": "   "}, "instruction", "blank"),
        ({"seed": "42"}, "seed", "valid integer"),
        ({"seed": True}, "seed", "valid integer"),
        ({"seed": 4.0}, "seed", "valid integer"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"seed": 2**63}, "seed", "less than or equal to"),
        ({"preset": 4}, "preset", "valid string"),
        ({"preset": ""}, "preset", "at least 1 character"),
        ({"negative_prompt": 3}, "negative_prompt", "valid string"),
        ({"true_cfg_scale": "4.0"}, "true_cfg_scale", "valid number"),
        ({"true_cfg_scale": True}, "true_cfg_scale", "valid number"),
        ({"true_cfg_scale": -0.5}, "true_cfg_scale", "greater than or equal to 0"),
        ({"true_cfg_scale": 100.5}, "true_cfg_scale", "less than or equal to 100"),
        ({"true_cfg_scale": float("nan")}, "true_cfg_scale", "finite"),
        ({"true_cfg_scale": float("inf")}, "true_cfg_scale", "finite"),
        ({"steps": 0}, "steps", "greater than or equal to 1"),
        ({"steps": 1001}, "steps", "less than or equal to 1000"),
        ({"steps": 8.0}, "steps", "valid integer"),
        ({"steps": "8"}, "steps", "valid integer"),
        ({"priority": "urgent"}, "priority", "'normal' or 'high'"),
        ({"priority": True}, "priority", "'normal' or 'high'"),
        ({"output": "png"}, "output", "must hold keys"),
        ({"output": ["png"]}, "output", "must hold keys"),
        ({"output": {"format": "gif"}}, "output.format", "'png', 'jpeg', 'webp' or 'same'"),
        ({"output": {"format": "PNG"}}, "output.format", "'png', 'jpeg', 'webp' or 'same'"),
        ({"output": {"quality": 0}}, "output.quality", "greater than or equal to 1"),
        ({"output": {"quality": 101}}, "output.quality", "less than or equal to 100"),
        ({"output": {"quality": "92"}}, "output.quality", "valid integer"),
        ({"output": {"size": "large"}}, "output.size", "'input' or 'model'"),
    ],
)
def test_invalid_values_name_the_key(mapping: dict[str, Any], key: str, hint: str) -> None:
    message = rejected([("station-3/IMG_0042.yaml", {"instruction": "x", **mapping})])
    assert message.startswith("station-3/IMG_0042.yaml: sidecar key ")
    assert f"`{key}`" in message
    assert hint in message


def test_steps_are_capped_by_limits_max_steps() -> None:
    message = rejected([("a.yaml", {"instruction": "x", "steps": 51})])
    assert message.startswith("a.yaml: sidecar key `steps` is 51")
    assert "at most 50 (limits.max_steps)" in message
    generous = Config(limits=Limits(max_steps=1000))
    assert resolve([("a.yaml", {"instruction": "x", "steps": 1000})], config=generous).steps == 1000
    # The cap is on what a station asks for; the operator's presets are not capped.
    assert one({"instruction": "x", "preset": "qwen-40step"}).steps is None


def test_invalid_values_from_yaml_text() -> None:
    layer = parse('instruction: x\nseed: "42"\n')
    message = rejected([("IMG_0042.yaml", layer)])
    assert "(line 2)" in message
    message = message.replace(" (line 2)", "")
    assert message == (
        "IMG_0042.yaml: sidecar key `seed`: Input should be a valid integer (got '42')"
    )


def test_rejection_details_list_the_keys() -> None:
    with pytest.raises(Rejected) as info:
        one({"instruction": "x", "sede": 1})
    assert "instruction:" in info.value.details
    assert "output:" in info.value.details


def test_missing_instruction() -> None:
    message = rejected([("station-3/IMG_0042.yaml", {"seed": 1})])
    assert message == (
        'no instruction: add `instruction: "…"` to station-3/IMG_0042.yaml or to a _defaults.yaml'
    )


def test_missing_instruction_without_own_sidecar() -> None:
    message = rejected([("station-3/_defaults.yaml", {"seed": 1})])
    assert message.startswith("no instruction: add `instruction:")
    assert "_defaults.yaml" in message


def test_instruction_length_limit_from_config() -> None:
    config = Config(limits=Limits(max_instruction_chars=10))
    assert resolve([("a.yaml", {"instruction": "x" * 10})], config=config).instruction == "x" * 10
    message = rejected([("a.yaml", {"instruction": "x" * 11})], config=config)
    assert (
        message == "a.yaml: sidecar key `instruction` is 11 characters; the limit is 10; shorten it"
    )


def test_default_limit_is_500_chars() -> None:
    assert len(one({"instruction": "é" * 500}).instruction) == 500
    assert "the limit is 500" in rejected([("a.yaml", {"instruction": "é" * 501})])


def test_unknown_preset_lists_the_presets() -> None:
    message = rejected([("a.yaml", {"instruction": "x", "preset": "qwen-1step"})])
    assert message.startswith("a.yaml: sidecar key `preset`: 'qwen-1step' is not a configured")
    for name in CONFIG.presets:
        assert name in message


def test_default_preset_from_config() -> None:
    config = Config(default_preset="qwen-40step")
    assert resolve([("a.yaml", {"instruction": "x"})], config=config).preset == "qwen-40step"


# --- layers ----------------------------------------------------------------------------------


def test_check_layer_accepts_partial_layers() -> None:
    check_layer({}, source="_defaults.yaml")
    check_layer({"seed": 3, "output": {"format": "jpeg"}}, source="_defaults.yaml")
    check_layer({"seed": None, "output": None}, source="IMG.yaml")


def test_check_layer_names_file_and_key() -> None:
    with pytest.raises(Rejected) as info:
        check_layer({"output": {"format": "gif"}}, source="station-3/_defaults.yaml")
    assert info.value.code is Reason.invalid_sidecar
    assert info.value.message.startswith("station-3/_defaults.yaml: sidecar key `output.format`: ")


def test_nearest_defaults_win_and_sidecar_wins_over_all() -> None:
    layers: list[tuple[str, dict[str, Any]]] = [
        ("_defaults.yaml", {"instruction": "top", "seed": 1, "steps": 4, "priority": "high"}),
        ("station-3/_defaults.yaml", {"instruction": "station", "seed": 2}),
        ("station-3/IMG_0042.yaml", {"seed": 3}),
    ]
    spec = resolve(layers, config=CONFIG)
    assert (spec.instruction, spec.seed, spec.steps, spec.priority) == ("station", 3, 4, "high")


def test_output_merges_key_by_key() -> None:
    layers: list[tuple[str, dict[str, Any]]] = [
        ("_defaults.yaml", {"instruction": "x", "output": {"format": "jpeg", "quality": 50}}),
        ("a/_defaults.yaml", {"output": {"quality": 70}}),
        ("a/IMG.yaml", {"output": {"size": "model"}}),
    ]
    assert resolve(layers, config=CONFIG).output == OutputOptions(
        format="jpeg", quality=70, size="model"
    )


def test_null_clears_a_farther_value() -> None:
    layers: list[tuple[str, dict[str, Any]]] = [
        ("_defaults.yaml", {"instruction": "x", "seed": 5, "output": {"format": "jpeg"}}),
        ("IMG.yaml", {"seed": None, "output": {"format": None}}),
    ]
    spec = resolve(layers, config=CONFIG)
    assert spec.seed is None
    assert spec.output.format == "png"


def test_error_in_defaults_layer_names_that_file() -> None:
    layers: list[tuple[str, dict[str, Any]]] = [
        ("_defaults.yaml", {"instruction": "x"}),
        ("station-3/_defaults.yaml", {"steps": "eight"}),
        ("station-3/IMG_0042.yaml", {"seed": 1}),
    ]
    message = rejected(layers)
    assert message.startswith("station-3/_defaults.yaml: sidecar key `steps`: ")


def test_error_is_reported_even_when_a_nearer_layer_overrides() -> None:
    # A broken defaults file is a problem for every image below it; say so now.
    layers: list[tuple[str, dict[str, Any]]] = [
        ("station-3/_defaults.yaml", {"steps": -1}),
        ("station-3/IMG_0042.yaml", {"instruction": "x", "steps": 4}),
    ]
    assert rejected(layers).startswith("station-3/_defaults.yaml: sidecar key `steps`")


def test_bad_preset_in_defaults_names_that_file() -> None:
    layers: list[tuple[str, dict[str, Any]]] = [
        ("station-3/_defaults.yaml", {"preset": "nope"}),
        ("station-3/IMG_0042.yaml", {"instruction": "x"}),
    ]
    assert rejected(layers).startswith("station-3/_defaults.yaml: sidecar key `preset`")


def test_has_instruction() -> None:
    assert not has_instruction([])
    assert not has_instruction([("_defaults.yaml", {"seed": 1})])
    assert has_instruction([("_defaults.yaml", {"instruction": "x"})])
    assert has_instruction([("_defaults.yaml", {"instruction": "x"}), ("a/_defaults.yaml", {})])
    assert not has_instruction(
        [("_defaults.yaml", {"instruction": "x"}), ("a/_defaults.yaml", {"instruction": None})]
    )


def test_defaults_alone_make_a_job() -> None:
    layers: list[tuple[str, dict[str, Any]]] = [
        ("station-3/_defaults.yaml", {"instruction": "Make the sky blue", "seed": 9})
    ]
    spec = resolve(layers, config=CONFIG)
    assert (spec.instruction, spec.seed) == ("Make the sky blue", 9)


# --- JobSpec ---------------------------------------------------------------------------------


def test_jobspec_round_trips_through_json() -> None:
    spec = JobSpec(
        instruction="Himmel blau ☁",
        seed=2**63 - 1,
        preset="qwen-4step",
        negative_prompt=" ",
        true_cfg_scale=4,
        steps=8,
        priority="high",
        output=OutputOptions(format="jpeg", quality=80, size="model"),
    )
    dumped = spec.model_dump(mode="json")
    assert JobSpec.model_validate(dumped) == spec
    assert JobSpec.model_validate(one({"instruction": "x"}).model_dump(mode="json")) == one(
        {"instruction": "x"}
    )


def test_jobspec_is_frozen_and_strict() -> None:
    spec = one({"instruction": "x"})
    with pytest.raises(ValueError, match="frozen"):
        spec.seed = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="instruction"):
        JobSpec.model_validate({"preset": "qwen-4step"})
    with pytest.raises(ValueError, match="extra"):
        JobSpec.model_validate({"instruction": "x", "preset": "p", "colour": "red"})


FAST_AND_SLOW = [
    b"instruction: burst 1\nseed: 1\n",
    b"instruction: 'x'\noutput:\n  format: png\n  quality: 90\nimages: [_a.png, _b.jpg]\n",
    b"",
    b"# only a comment\n",
    b"a: 1\nb: 2024-01-02\nc: yes\nd: ~\ne: 0x1F\nf: 1e3\ng: .inf\n",
    b"k: |\n  multi\n  line\n",
    b"x: 'it''s'\ny: \"\\u00e9\"\n",
    b"- a\n- b\n",
    b"a: &x 1\nb: *x\n",
    b"a: 1\na: 2\n",
    b"? [1]\n: 2\n",
    b"a:\n\tb: 1\n",
    b"a: [1, 2\n",
    b"a: 1\n---\nb: 2\n",
    b"a: !!python/object:os.system x\n",
    b"a: \x07\n",
    b"a: 2024-13-45\n",
    b"a:\n  b:\n    c:\n      d: 1\n",
]


@pytest.mark.parametrize("data", FAST_AND_SLOW)
def test_libyaml_reads_a_sidecar_exactly_as_the_python_parser_does(
    data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same mapping and key lines, or the same message (issue 14: libyaml's parser first)."""

    def parse() -> object:
        try:
            parsed = parse_yaml(data, source="s.yaml", max_bytes=10_000)
        except Rejected as e:
            return str(e)
        return dict(parsed), getattr(parsed, "lines", None)

    assert sidecar._fast("a: 1\n") is not None  # libyaml is there and takes a plain file
    fast = parse()
    monkeypatch.setattr(sidecar, "_fast", lambda text: None)
    assert fast == parse()
