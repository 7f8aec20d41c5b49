"""One root exception; each rejection carries its SPEC reason code."""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping
from enum import StrEnum
from typing import get_args, get_origin

from pydantic import BaseModel


class Reason(StrEnum):
    """The SPEC's reason codes; the values go straight into reason files and status JSON."""

    queue_full = "queue_full"
    no_sidecar = "no_sidecar"
    no_image = "no_image"
    invalid_sidecar = "invalid_sidecar"
    invalid_image = "invalid_image"
    too_large = "too_large"
    unsupported_type = "unsupported_type"
    ambiguous = "ambiguous"
    edit_failed = "edit_failed"
    out_of_memory = "out_of_memory"
    timeout = "timeout"
    crashed = "crashed"
    cancelled = "cancelled"


class HotfolderError(Exception):
    """Root of every error hotfolder raises on purpose."""


class ConfigError(HotfolderError):
    """The configuration or the command line is wrong; the message says what to change."""


class Rejected(HotfolderError):
    """A drop or a job that cannot be done, with its reason code and a message a person can act on."""

    def __init__(self, code: Reason, message: str, details: str = "") -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.details = details


class IncompleteImage(HotfolderError):
    """The file looks like an image but does not decode completely: probably still being copied."""


class MaybeIncomplete(IncompleteImage):
    """The file decodes but ends as a half-written one would (a long zero tail); it may be whole."""


class SetupError(HotfolderError):
    """Something a command needs before it can start is missing or taken (exit status 2, as
    for bad configuration): the model's weights, the root's lock."""


class ServiceLocked(SetupError):
    """Another `hotfolder run` holds this root."""


def describe_validation_error(
    error: object,
    what: str,
    *,
    model: type[BaseModel] | None = None,
    lines: Mapping[str, int] | None = None,
) -> str:
    """Turn a pydantic ValidationError into sentences that name the key, the value and the fix.

    `what` names the thing validated ("config key", "sidecar key"); with `model`, an unknown
    key gets a did-you-mean from the keys known there; with `lines` (dotted key -> line), each
    sentence says where the key is.
    """
    from pydantic import ValidationError

    from hotfolder.yamltext import did_you_mean

    if not isinstance(error, ValidationError):
        return str(error)
    sentences = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        line = (lines or {}).get(key)
        named = f"{what} `{key}`" + (f" (line {line})" if line else "")
        kind = item["type"]
        if kind == "extra_forbidden":
            known = known_keys(model, item["loc"]) if model else []
            meant = did_you_mean(str(item["loc"][-1]), known)
            fix = f"did you mean `{meant}`? Otherwise" if meant else "check its spelling or"
            sentences.append(f"{named} is not known; {fix} remove it")
            continue
        if kind == "missing":
            sentences.append(f"{named} is required")
            continue
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:
            sentences.append(message)
            continue
        value = item.get("input")
        if isinstance(value, list) and kind.endswith("_type"):
            # `- item` lines or `[a, b]` where one value belongs.
            sentences.append(
                f"{named} holds a list, but takes one value; write it on the key's own line, "
                f'like `{item["loc"][-1]}: "…"`, without `- ` or [ ]'
            )
            continue
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        sentences.append(f"{named}: {message} (got {shown})")
    return "; ".join(sentences)


def known_keys(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys a model accepts where `loc` (a pydantic error location) ends."""
    current: type[BaseModel] | None = model
    parts = list(loc[:-1])
    while parts and current is not None:
        field = current.model_fields.get(str(parts.pop(0)))
        if field is None:
            return []
        current, keyed = _model_in(field.annotation)
        if keyed and parts:
            parts.pop(0)  # `presets: {NAME: {...}}`: skip the dictionary's own key
    return list(current.model_fields) if current is not None else []


def _model_in(annotation: object) -> tuple[type[BaseModel] | None, bool]:
    """The model an annotation holds (`X`, `X | None`, `dict[str, X]`), and whether via a dict."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    keyed = get_origin(annotation) is dict
    for arg in get_args(annotation):
        found, inner = _model_in(arg)
        if found is not None:
            return found, keyed or inner
    return None, False


class Repeats:
    """Logs an error with its traceback once per key, until that key's error changes (a
    failed/ that stays read-only would otherwise log the same traceback every tick)."""

    def __init__(self, logger: logging.Logger, limit: int = 1000) -> None:
        self.logger = logger
        self.limit = limit
        self._last: dict[Hashable, str] = {}

    def log(self, key: Hashable, error: Exception, what: str) -> None:
        """Call from an `except` block: the traceback is the one being handled."""
        problem = f"{type(error).__name__}: {error}"
        if self._last.get(key) != problem:
            self.logger.exception("%s", what)
            self._last[key] = problem
            if len(self._last) > self.limit:
                self._last.clear()
