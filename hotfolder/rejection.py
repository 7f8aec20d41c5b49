"""Sending a drop to failed/: the intent is written first, so a crash halfway is finished on start.

A rejection moves one to three files, writes a reason file and a status file. Done
one after the other, a crash in between would leave a sidecar behind in inbox/ (to
be rejected again later as `no_image`) or a reason file without its inputs. So the
whole step is recorded in `.hotfolder/rejecting/` first and replayed until done.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from hotfolder import fsops
from hotfolder.errors import Reason
from hotfolder.jobstatus import JobStatus, iso
from hotfolder.layout import Layout
from hotfolder.status import Board

log = logging.getLogger(__name__)


class Rejection(BaseModel):
    name: str
    moves: list[tuple[str, str]]  # (from, to), relative to the root
    code: str
    message: str
    details: str = ""
    status: dict[str, Any]
    # The drop's sidecar asked to be told (and was read, and fit): the status is POSTed.
    notify_url: str | None = None


def intents_dir(layout: Layout) -> Path:
    return layout.private / "rejecting"


def write_reason(
    path: Path, code: Reason | str, message: str, details: str, files: list[str]
) -> None:
    fsops.write_atomic(path, reason_text(code, message, details, files))


def reason_text(code: Reason | str, message: str, details: str, files: list[str]) -> bytes:
    """`CODE: one-line message`, then what a person can do about it, then the files."""
    code_text = code.value if isinstance(code, Reason) else code
    lines = [f"{code_text}: {' '.join(message.split())}", ""]
    if details:
        lines += [details.strip(), ""]
    if files:
        lines.append("Files: " + ", ".join(files))
    lines.append(f"Written by hotfolder at {iso(time.time())}.")
    return ("\n".join(lines) + "\n").encode()


def reject(layout: Layout, board: Board, rejection: Rejection) -> None:
    intent = intents_dir(layout) / f"{rejection.status['job_id']}.json"
    fsops.write_atomic(intent, rejection.model_dump_json().encode())
    try:
        apply(layout, board, rejection, intent)
    except OSError:
        # failed/ refused the files (read-only, full). If nothing moved yet, drop the intent:
        # the drop stays in inbox/ and is rejected afresh once failed/ takes files again.
        # Otherwise the intent stays and `replay` finishes it.
        if all(os.path.lexists(layout.root / source) for source, _ in rejection.moves):
            fsops.remove(intent)
        raise


def apply(layout: Layout, board: Board, rejection: Rejection, intent: Path) -> None:
    """Carry out (the rest of) a rejection; each part is skipped if it is already done."""
    root = layout.root
    moved = []
    for source, target in rejection.moves:
        # lexists: a rejected symlink is moved as the link itself, never followed.
        if os.path.lexists(root / source) and not os.path.lexists(root / target):
            fsops.move(root / source, root / target)
        if os.path.lexists(root / target):
            moved.append(Path(target).name)
    write_reason(
        layout.reason_path(rejection.name),
        rejection.code,
        rejection.message,
        rejection.details,
        moved,
    )
    status = JobStatus.from_json(rejection.status)
    with board.closing(status, details=rejection.details or None, rejected=True) as (path, data):
        # If the disk refuses it, the intent stays and `replay` tries again.
        fsops.write_atomic(path, data)
    fsops.remove(intent)


def replay(layout: Layout, board: Board) -> int:
    """Finish every rejection a crash interrupted; return how many there were."""
    folder = intents_dir(layout)
    if not folder.is_dir():
        return 0
    done = 0
    for intent in sorted(folder.glob("*.json")):
        if fsops.is_temp_name(intent.name):
            continue
        try:
            rejection = Rejection.model_validate(json.loads(intent.read_bytes()))
        except (OSError, ValueError, ValidationError) as e:
            log.error("cannot read %s (%s); left for a person to look at", intent, e)
            continue
        apply(layout, board, rejection, intent)
        done += 1
    return done
