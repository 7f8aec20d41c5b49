"""One root exception; each rejection carries its SPEC reason code."""

from __future__ import annotations

from enum import StrEnum


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


class ServiceLocked(HotfolderError):
    """Another `hotfolder run` holds this root."""


def describe_validation_error(error: object, what: str) -> str:
    """Turn a pydantic ValidationError into sentences that name the key, the value and the fix.

    `what` names the thing validated ("config key", "sidecar key").
    """
    from pydantic import ValidationError

    if not isinstance(error, ValidationError):
        return str(error)
    lines = []
    for item in error.errors(include_url=False):
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        kind = item["type"]
        if kind == "extra_forbidden":
            lines.append(f"{what} `{key}` is not known; remove it or check its spelling")
            continue
        if kind == "missing":
            lines.append(f"{what} `{key}` is required")
            continue
        message = item["msg"].removeprefix("Value error, ")
        if not item["loc"]:
            lines.append(message)
            continue
        value = item.get("input")
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        lines.append(f"{what} `{key}`: {message} (got {shown})")
    return "; ".join(lines)
