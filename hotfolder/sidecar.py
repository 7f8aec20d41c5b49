"""Sidecars and `_defaults.yaml` layers: parse them safely, validate them, merge them into a JobSpec.

A job's request is built from layers: every `_defaults.yaml` from `inbox/` down to
the image's folder, then the image's own sidecar. Later layers win key by key (the
`output` mapping merges key by key too); a `null` value clears what a farther layer
set, so a sidecar can write `seed: null` to get a random seed despite its defaults.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.error import Mark
from yaml.events import AliasEvent, Event, MappingStartEvent, NodeEvent, SequenceStartEvent
from yaml.nodes import MappingNode, Node
from yaml.reader import Reader
from yaml.resolver import Resolver

from hotfolder import fsops
from hotfolder.config import Config
from hotfolder.errors import Reason, Rejected, describe_validation_error
from hotfolder.notify import host_problem
from hotfolder.yamltext import decode, explain

SIDECAR_SUFFIXES = (".yaml", ".yml")
DEFAULTS_NAME = "_defaults.yaml"
# Both spellings are read alike, as for a sidecar; a folder holding both is ambiguous.
DEFAULTS_NAMES = (DEFAULTS_NAME, "_defaults.yml")

# A sidecar needs two levels (`output: {format: png}`); anything far deeper is an attack or a mistake.
MAX_DEPTH = 20

MAX_SEED = 2**63 - 1

# Goes into the reason file's details, so a person can fix a sidecar without the docs.
KEYS_HELP = """\
Sidecar keys (all optional except instruction, which may come from a _defaults.yaml):
  instruction: "Make the sky blue"   # text, not blank
  seed: 42                            # whole number 0..9223372036854775807; random if absent
  preset: qwen-4step                  # one of the configured presets
  negative_prompt: ""                 # text
  true_cfg_scale: 4.0                 # number 0..100
  steps: 8                            # whole number from 1 to limits.max_steps (50 unless set)
  priority: normal                    # normal | high
  output:
    format: png                       # png | jpeg | webp | same (the input's: jpeg, png, webp; else png)
    quality: 92                       # 1..100, for jpeg and webp
    size: input                       # input | model
    keep_gps: false                   # true: the result keeps the camera's GPS position
  notify_url: https://host/hook       # optional, a host in notify.allowed_hosts: the final status is POSTed there
  images: [_logo.png, _pose.jpg]      # up to 2 reference images (files named _*, in this folder or one
                                      # above it up to inbox/); needs editor.pipeline: edit-plus"""


def _not_blank(text: str) -> str:
    # Block scalars (`|`) end in a newline and editors leave stray spaces; neither is meant.
    stripped = text.strip()
    if not stripped:
        raise ValueError('is blank; write what to change, e.g. `instruction: "Make the sky blue"`')
    return stripped


def _plain_url(text: str) -> str:
    if not re.fullmatch(r"https?://\S+", text):
        raise ValueError("is not an http(s) URL; write it like https://hooks.example.lan/done")
    return text


def _asset_name(text: str) -> str:
    # A plain file name: the asset is looked up folder by folder, never by a path.
    if "/" in text or "\\" in text or "\0" in text or text in (".", ".."):
        raise ValueError(
            f"{text!r} leaves the folder tree; write the file's name only, like _logo.png, and "
            "put the file in the image's folder or a folder above it (up to inbox/)"
        )
    if not text.startswith("_"):
        raise ValueError(
            f"{text!r} is not an asset name: reference images are files whose names start "
            f"with `_`; rename the file to _{text} and write that"
        )
    return text


Instruction = Annotated[str, AfterValidator(_not_blank)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
PresetName = Annotated[str, Field(min_length=1)]
CfgScale = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
Steps = Annotated[int, Field(ge=1, le=1000)]
Priority = Literal["normal", "high"]
OutputFormat = Literal["png", "jpeg", "webp", "same"]
Quality = Annotated[int, Field(ge=1, le=100)]
OutputSize = Literal["input", "model"]
# Where the final status JSON is POSTed when the job ends (optional, per job or per folder).
NotifyUrl = Annotated[str, Field(max_length=2000), AfterValidator(_plain_url)]
# Reference images for edit-plus (SPEC "Reference images"): asset names, at most two.
MAX_REFERENCES = 2
AssetName = Annotated[str, Field(min_length=1, max_length=255), AfterValidator(_asset_name)]
AssetNames = Annotated[list[AssetName], Field(max_length=MAX_REFERENCES)]


class _Model(BaseModel):
    # strict: "42" is not a seed and `yes` is not a step count; an int still passes as a float.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class OutputOptions(_Model):
    """How the result is written: its format, lossy quality, and whether it is resized back."""

    format: OutputFormat = "png"
    quality: Quality = 92
    size: OutputSize = "input"
    keep_gps: bool = False


class JobSpec(_Model):
    """The effective, validated request of one job (defaults applied, preset filled in)."""

    instruction: Instruction
    seed: Seed | None = None
    preset: PresetName
    negative_prompt: str | None = None
    true_cfg_scale: CfgScale | None = None
    steps: Steps | None = None
    priority: Priority = "normal"
    output: OutputOptions = OutputOptions()
    notify_url: NotifyUrl | None = None
    images: AssetNames = []


class _OutputLayer(_Model):
    format: OutputFormat | None = None
    quality: Quality | None = None
    size: OutputSize | None = None
    keep_gps: bool | None = None


class _Layer(_Model):
    """One layer as written: every key optional, `null` allowed (it clears a farther layer's value)."""

    instruction: Instruction | None = None
    seed: Seed | None = None
    preset: PresetName | None = None
    negative_prompt: str | None = None
    true_cfg_scale: CfgScale | None = None
    steps: Steps | None = None
    priority: Priority | None = None
    output: _OutputLayer | None = None
    notify_url: NotifyUrl | None = None
    images: AssetNames | None = None


# --- YAML -------------------------------------------------------------------------------------


class _Refused(yaml.MarkedYAMLError):
    """A construct we refuse on purpose, reported like a syntax error (with its line)."""

    def __init__(self, problem: str, node_or_event: Node | NodeEvent) -> None:
        # The stubs allow libyaml's Mark too; the pure-Python loader used here makes yaml.error.Mark.
        mark = cast(Mark | None, node_or_event.start_mark)
        super().__init__(problem=problem, problem_mark=mark)


class _Rules(Composer, SafeConstructor):
    """The safe loader's rules, tightened: no anchors or aliases, a nesting cap, and
    string-only, unique keys. Over either parser (`_SafeLoader`, `_FastLoader`)."""

    _depth = 0
    peek_event: Callable[[], Event | None]  # the parser's

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        event = self.peek_event()
        # Refusing anchors as well as aliases keeps the rule simple: no value is written once and
        # used many times, so the composed tree is never larger than the text (billion laughs).
        if isinstance(event, AliasEvent) or (
            isinstance(event, NodeEvent) and event.anchor is not None
        ):
            raise _Refused("YAML anchors and aliases are not allowed; write each value out", event)
        if not isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            return super().compose_node(parent, index)
        # The composer recurses per level; stop before a deep document exhausts the stack.
        if self._depth >= MAX_DEPTH:
            raise _Refused(
                f"nesting deeper than {MAX_DEPTH} levels is not allowed; a sidecar needs two", event
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _value_node in node.value:
            if key_node.tag != "tag:yaml.org,2002:str":
                raise _Refused(
                    f"key {key_node.value!r} is not a name; keys are words like instruction or seed",
                    key_node,
                )
            # PyYAML keeps the last of two equal keys silently; a person meant one of them.
            if key_node.value in seen:
                raise _Refused(f"key `{key_node.value}` appears twice; keep one", key_node)
            seen.add(key_node.value)
        return super().construct_mapping(node, deep)


class _SafeLoader(_Rules, yaml.SafeLoader):
    """PyYAML's own parser in Python: what every problem is reported with."""


if yaml.__with_libyaml__:  # PyYAML built without libyaml has only the Python parser
    from yaml._yaml import CParser

    class _FastLoader(_Rules, CParser, Resolver):
        """libyaml's parser under the same rules (issue 14: the Python parser was a tenth of
        intake's time in a burst). Only a file it reads without any problem is taken from
        it; anything else is read again by `_SafeLoader`, whose messages the reasons quote."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)  # type: ignore[no-untyped-call]  # untyped in the stubs
            SafeConstructor.__init__(self)
            Resolver.__init__(self)  # type: ignore[no-untyped-call]


def _yaml_problem(error: yaml.YAMLError, text: str) -> str:
    if isinstance(error, _Refused) and error.problem_mark is not None:
        mark = error.problem_mark
        return f"{error.problem} (at line {mark.line + 1}, column {mark.column + 1})"
    if isinstance(error, yaml.constructor.ConstructorError) and error.problem_mark is not None:
        # Mostly tags such as !!python/object, which the safe loader refuses to build.
        mark = error.problem_mark
        return (
            f"{error.problem or error.context} (at line {mark.line + 1}, column "
            f"{mark.column + 1}); write plain values without `!!` tags"
        )
    if isinstance(error, yaml.MarkedYAMLError):
        return explain(error, text)
    return f"not valid YAML: {error}; fix the syntax"


class YamlMapping(dict[str, Any]):
    """A parsed sidecar that remembers on which line each key is (`output.format` too)."""

    lines: dict[str, int]


def _key_lines(node: Node, prefix: str = "") -> dict[str, int]:
    lines: dict[str, int] = {}
    if isinstance(node, MappingNode) and len(prefix.split(".")) <= 2:
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key + "."))
    return lines


class IncompleteSidecar(Rejected):
    """A sidecar with zero bytes in it: maybe still being written (intake waits a while)."""


def parse_yaml(data: bytes, *, source: str, max_bytes: int) -> dict[str, Any]:
    """Parse one sidecar or defaults file into a mapping; every problem is `invalid_sidecar`.

    Strict UTF-8, the safe loader, no anchors or aliases, at most `MAX_DEPTH` levels, a
    single document that is a mapping with string keys. An empty document is `{}`.
    """

    def reject(problem: str) -> Rejected:
        return Rejected(Reason.invalid_sidecar, f"{source}: {problem}", KEYS_HELP)

    if len(data) > max_bytes:
        raise reject(f"the file is {len(data)} bytes; the limit is {max_bytes}; shorten it")
    try:
        # UTF-8, or UTF-16 by its byte-order mark as PowerShell 5 writes it: YAML allows both.
        text = decode(data).removeprefix("\ufeff")
    except ValueError as e:
        raise reject(str(e)) from e
    if "\x00" in text:
        # A copier that sets the size first fills it in later (Windows Explorer over SMB).
        raise IncompleteSidecar(
            Reason.invalid_sidecar,
            f"{source}: the file holds zero bytes (NUL), as one still being written does; if "
            "it is whole, save it again as plain UTF-8 text",
            KEYS_HELP,
        )
    parsed = _fast(text)
    if parsed is None:
        parsed = _parse(text, _SafeLoader, reject)
    document, node = parsed
    if document is None:
        return {}
    if not isinstance(document, dict):
        kind = "a list" if isinstance(document, list) else "a single value"
        raise reject(f'the file must hold keys like `instruction: "…"`, not {kind}')
    mapping = YamlMapping(document)
    mapping.lines = _key_lines(node) if node is not None else {}
    return mapping


Parsed = tuple[Any, Node | None]  # the document, and the node it was built from


def _fast(text: str) -> Parsed | None:
    """The document as libyaml reads it, or None if it has anything to say about it (or no
    libyaml is installed): then the Python parser reads it again and says what."""
    if not yaml.__with_libyaml__ or Reader.NON_PRINTABLE.search(text):
        return None
    try:
        return _parse(text, _FastLoader, _refuse)
    except Exception:
        return None


def _refuse(problem: str) -> Exception:
    return ValueError(problem)


def _parse(
    text: str, loader_type: type[_SafeLoader | _FastLoader], reject: Callable[[str], Exception]
) -> Parsed:
    loader: _SafeLoader | _FastLoader | None = None
    try:
        # The reader checks for control characters as soon as it is built, so build it in here.
        loader = loader_type(text)
        loader.get_event()  # type: ignore[no-untyped-call]  # the StreamStartEvent
        if loader.check_event(yaml.StreamEndEvent):
            return None, None
        node = loader.compose_document()  # type: ignore[no-untyped-call]
        if not loader.check_event(yaml.StreamEndEvent):
            raise reject("the file holds more than one YAML document (`---`); keep one")
        return (loader.construct_document(node) if node is not None else None), node
    except yaml.YAMLError as e:
        raise reject(_yaml_problem(e, text)) from e
    except (ValueError, TypeError, OverflowError) as e:
        # Constructors raise these on values like a 5000-digit number or a date 2024-13-45.
        raise reject(f"a value cannot be read: {e}; quote it as text or fix it") from e
    finally:
        if loader is not None:
            loader.dispose()


def read_layer(path: Path, *, max_bytes: int, source: str | None = None) -> dict[str, Any]:
    """Read and parse one sidecar or `_defaults.yaml` without following links or blocking on FIFOs.

    `source` names the file in messages (default: its file name). A file that vanished
    raises the OSError; the caller decides what that means.
    """
    name = source or path.name
    try:
        data = fsops.read_regular(path, max_bytes)
    except fsops.NotARegularFile as e:
        raise Rejected(
            Reason.invalid_sidecar,
            f"{name} is not a plain file (a link, folder or pipe); drop the file itself",
        ) from e
    except fsops.FileTooBig as e:
        raise Rejected(
            Reason.invalid_sidecar,
            f"{name}: the file is {e.size} bytes; the limit is {e.max_bytes}; shorten it",
        ) from e
    return parse_yaml(data, source=name, max_bytes=max_bytes)


# --- layers -----------------------------------------------------------------------------------


def check_layer(mapping: Mapping[str, Any], *, source: str) -> None:
    """Validate the keys and types present in one layer; nothing is required of a single layer."""
    output = mapping.get("output")
    if output is not None and not isinstance(output, Mapping):
        raise Rejected(
            Reason.invalid_sidecar,
            f"{source}: sidecar key `output` must hold keys, like `output: {{format: png}}` "
            f"(got {output!r})",
            KEYS_HELP,
        )
    try:
        _Layer.model_validate(dict(mapping))
    except ValidationError as e:
        lines = getattr(mapping, "lines", None)
        problem = describe_validation_error(e, "sidecar key", model=_Layer, lines=lines)
        raise Rejected(Reason.invalid_sidecar, f"{source}: {problem}", KEYS_HELP) from e


def _merge(
    layers: Sequence[tuple[str, Mapping[str, Any]]],
) -> tuple[dict[str, Any], dict[str, str]]:
    """Merge layers nearest-wins; return the merged mapping and which source set each key."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for source, mapping in layers:
        for key, value in mapping.items():
            if key == "output" and isinstance(value, Mapping):
                output = dict(merged.get("output", {}))
                for sub_key, sub_value in value.items():
                    if sub_value is None:
                        output.pop(sub_key, None)
                    else:
                        output[sub_key] = sub_value
                        origin[f"output.{sub_key}"] = source
                merged["output"] = output
            elif value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
                origin[key] = source
    return merged, origin


def has_instruction(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> bool:
    """Whether the merged layers set an instruction (so an image without a sidecar is a job)."""
    merged, _origin = _merge(layers)
    return merged.get("instruction") is not None


def source_of(layers: Sequence[tuple[str, Mapping[str, Any]]], key: str) -> str:
    """Which layer set `key` in the merged request (the nearest that did), or "" if none."""
    return _merge(layers)[1].get(key, "")


def resolve(layers: Sequence[tuple[str, Mapping[str, Any]]], *, config: Config) -> JobSpec:
    """Merge the layers (farthest `_defaults.yaml` first, the image's sidecar last) into a JobSpec.

    Raises `Rejected(invalid_sidecar)` naming the file and the key at fault.
    """
    for source, mapping in layers:
        check_layer(mapping, source=source)
    merged, origin = _merge(layers)

    instruction = merged.get("instruction")
    if instruction is None:
        own = layers[-1][0] if layers else ""
        if not own or Path(own).name in DEFAULTS_NAMES:
            own = "the image's NAME.yaml"
        raise Rejected(
            Reason.invalid_sidecar,
            f'no instruction: add `instruction: "…"` to {own} or to a {DEFAULTS_NAME}',
            KEYS_HELP,
        )
    max_chars = config.limits.max_instruction_chars
    length = len(instruction.strip())
    if length > max_chars:
        raise Rejected(
            Reason.invalid_sidecar,
            f"{origin['instruction']}: sidecar key `instruction` is {length} characters; "
            f"the limit is {max_chars}; shorten it",
        )
    preset = merged.setdefault("preset", config.default_preset)
    if preset not in config.presets:
        known = ", ".join(sorted(config.presets))
        raise Rejected(
            Reason.invalid_sidecar,
            f"{origin.get('preset', 'configuration')}: sidecar key `preset`: {preset!r} is not a "
            f"configured preset; use one of: {known}",
        )
    _check_limits(merged, origin, config)
    try:
        return JobSpec.model_validate(merged)
    except ValidationError as e:  # pragma: no cover - every layer was checked above
        sources = ", ".join(dict.fromkeys(source for source, _ in layers))
        raise Rejected(
            Reason.invalid_sidecar, f"{sources}: {describe_validation_error(e, 'sidecar key')}"
        ) from e


def _check_limits(merged: Mapping[str, Any], origin: Mapping[str, str], config: Config) -> None:
    """What the operator caps for untrusted stations: `limits.max_steps`, `notify.allowed_hosts`."""
    steps = merged.get("steps")
    if steps is not None and steps > config.limits.max_steps:
        raise Rejected(
            Reason.invalid_sidecar,
            f"{origin['steps']}: sidecar key `steps` is {steps}; this service allows at most "
            f"{config.limits.max_steps} (limits.max_steps); ask for fewer, or leave steps out "
            "to use the preset's",
        )
    names = merged.get("images")
    if names and config.editor.pipeline != "edit-plus":
        raise Rejected(
            Reason.invalid_sidecar,
            f"{origin['images']}: sidecar key `images` needs editor.pipeline: edit-plus (this "
            f"service runs pipeline: {config.editor.pipeline}, which takes one image); remove "
            "`images`, or ask the operator to switch to edit-plus",
        )
    url = merged.get("notify_url")
    if url is not None:
        problem = host_problem(url, config.notify.allowed_hosts)
        if problem is not None:
            raise Rejected(Reason.invalid_sidecar, f"{origin['notify_url']}: {problem}")
