"""YAML as people write it: decoded as YAML allows, its common mistakes told in plain sentences.

Used for sidecars, `_defaults.yaml` and the configuration alike. Parser messages such as
"mapping values are not allowed here" mean nothing to a photographer; each common mistake
gets the line it is on and the change that fixes it.
"""

from __future__ import annotations

import codecs
import difflib
import json
from collections.abc import Iterable

import yaml

# YAML 1.2, 5.2: a BOM names the encoding; without one, where the NULs are does.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),  # PowerShell 5's `>` and Out-File write this
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _encoding(data: bytes) -> str:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    head = data[:4]
    if len(head) == 4 and head[:3] == b"\0\0\0":
        return "utf-32-be"
    if len(head) == 4 and head[1:] == b"\0\0\0":
        return "utf-32-le"
    if len(head) >= 2 and head[0] == 0:
        return "utf-16-be"
    if len(head) >= 2 and head[1] == 0:
        return "utf-16-le"
    return "utf-8"


def decode(data: bytes) -> str:
    """The text of a YAML file: UTF-8, or UTF-16/32 by its byte-order mark (or its NULs).

    Raises ValueError with a sentence saying what to do.
    """
    encoding = _encoding(data)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        shown = encoding.upper().removesuffix("-SIG").replace("-LE", "").replace("-BE", "")
        raise ValueError(
            f"not valid {shown} text (bad byte at offset {e.start}); save it as UTF-8"
        ) from e


def did_you_mean(word: str, known: Iterable[str]) -> str | None:
    """The known key a near miss such as `sed` was meant to be (`seed`), if there is one."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _line(text: str, index: int) -> str:
    lines = text.splitlines()
    return lines[index] if 0 <= index < len(lines) else ""


def explain(error: yaml.MarkedYAMLError, text: str) -> str:
    """A sentence with the line and the fix for a syntax error the parser found in `text`."""
    mark = error.problem_mark
    problem = error.problem or ""
    if mark is None:
        return f"not valid YAML: {problem or error}; fix the syntax"
    row = mark.line + 1
    here = _line(text, mark.line)
    if error.context == "while scanning a quoted scalar" and error.context_mark is not None:
        opened = error.context_mark
        quote = _line(text, opened.line)[opened.column : opened.column + 1] or '"'
        return (
            f"line {opened.line + 1}: the quote {quote} opened there is never closed; "
            f"end the value with {quote} on the same line"
        )
    if "'\\t'" in problem:
        if not here[: mark.column].strip():
            return (
                f"line {row} is indented with a tab; YAML indents with spaces only: "
                "replace the tab with spaces"
            )
        return (
            f"line {row} has a tab at column {mark.column + 1} where YAML wants a space; "
            "replace the tab with a space"
        )
    if problem == "mapping values are not allowed here":
        return _colon(here, row, mark.column)
    if problem.startswith("expected <block end>, but found") and error.context_mark is not None:
        return (
            f"line {row}: more text follows a closing quote; put the whole value in double "
            'quotes, writing a quote inside it as \\"'
        )
    return (
        f"not valid YAML at line {row}, column {mark.column + 1}: {problem}; fix the syntax there"
    )


def _colon(here: str, row: int, column: int) -> str:
    """A `: ` the parser did not expect: inside a value, or a key indented too far."""
    key, sep, value = here.partition(":")
    if sep and key.strip() and len(key) < column and not key.strip().startswith(("-", "#")):
        fixed = f"{key.strip()}: {json.dumps(value.strip(), ensure_ascii=False)}"
        return (
            f'line {row}: the value of `{key.strip()}` holds ": ", which YAML reads as the start '
            f"of another key; put the whole value in double quotes: {fixed}"
        )
    return (
        f"line {row} is indented more than the key above it; start `{key.strip()}` in the same "
        "column as the other keys (or, if it continues the value above, put that value in "
        "double quotes on one line)"
    )
