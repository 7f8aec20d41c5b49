"""How the page and `hotfolder status` say things to people: waits, durations, ages, and
what to do about each reason code."""

from __future__ import annotations

from typing import Final

# What a person can do about each reason code, where the reason file says nothing better.
FIXES: Final[dict[str, str]] = {
    "queue_full": "The queue was full. Drop the files again once it has room.",
    "no_sidecar": "Drop NAME.yaml with an instruction next to the image (or put an "
    "instruction in the folder's _defaults.yaml), then drop the image again.",
    "no_image": "Drop the image (NAME.jpg, .png, …) in the same folder as its sidecar.",
    "invalid_sidecar": "Fix the sidecar (the message names the key), then drop both files again.",
    "invalid_image": "Check that the image opens on your computer; export it again as JPEG "
    "or PNG and drop it again.",
    "too_large": "Make the image smaller and drop it again.",
    "unsupported_type": "Only jpg, png, webp, tif and bmp images with their .yaml sidecars "
    "are jobs.",
    "ambiguous": "Keep exactly one image and one NAME.yaml per name, then drop them again.",
    "edit_failed": "The editor failed on this image. Tell the operator, who can look at "
    "the service log and retry it.",
    "out_of_memory": "The image was too big for the GPU. Try a smaller image.",
    "timeout": "The edit took too long. Drop it again, or use a faster preset.",
    "crashed": "The editor stopped working on this image more than once. Tell the operator.",
    "cancelled": "Someone cancelled it. Drop the files again to redo it.",
}


# Reason-file details longer than this are a reference (the sidecar keys) or a traceback:
# shown folded away on the page, with the short advice above them.
SHORT_ADVICE_CHARS = 240
DETAILS_CHARS = 2000


def advice(code: str | None, details: str | None) -> tuple[str, str | None]:
    """What to do, in a sentence or two, and the longer details (or None) to fold away."""
    text = (details or "").strip()
    short = len(text) <= SHORT_ADVICE_CHARS and text.count("\n") < 3
    if text and short and not text.startswith("Traceback"):
        return " ".join(text.split()), None
    more = text[:DETAILS_CHARS] + ("…" if len(text) > DETAILS_CHARS else "") if text else None
    return FIXES.get(code or "", "Tell the operator."), more


def fix_for(code: str | None, details: str | None) -> str:
    """What to do, in a sentence or two."""
    return advice(code, details)[0]


def seconds(value: float) -> str:
    """12 s, 3 min, 1 h 20 min."""
    total = round(value)
    if total < 60:
        return f"{total} s"
    minutes = round(total / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def wait(value: float | None, position: int | None, *, starts_jobs: bool) -> str:
    """A queued job's estimated wait as a person reads it."""
    if not starts_jobs or value is None:
        return "on hold"
    if position == 1 and value < 1:
        return "next"
    if value < 1:
        return "now"
    return "about " + seconds(value)


def age(value: float) -> str:
    """How long ago: `just now`, `40 s ago`, `3 min ago`."""
    if value < 2:
        return "just now"
    return seconds(value) + " ago"


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else (words or word + 's')}"
