"""Which failed jobs `hotfolder retry NAME... | FOLDER/ | --code CODE | --all` means, and
putting them back oldest first while they fit under the cap.

A job in failed/ is known by its reason file (`failed/NAME.reason.txt`, first line
`CODE: message`); its age is its status file's `created_at` (when it was dropped), or the
reason file's time once the status file has left outbox/.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from hotfolder.cancels import CANCEL_REASON_SUFFIX
from hotfolder.config import Config
from hotfolder.jobs import Jobs
from hotfolder.layout import Layout
from hotfolder.names import fold, kind_of, split_name
from hotfolder.order import station_of
from hotfolder.retry import Layers, retry
from hotfolder.status import parse_iso, read_status

REASON_SUFFIX = ".reason.txt"
# A report names at most this many jobs per line; the rest are counted.
SHOWN = 10


@dataclass(frozen=True)
class Selection:
    """What to retry: names and FOLDER/s, narrowed by a reason code; or every failed job."""

    targets: tuple[str, ...] = ()
    code: str | None = None
    every: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"targets": list(self.targets), "code": self.code, "all": self.every}

    @classmethod
    def from_request(cls, request: dict[str, Any]) -> Selection:
        """From a control request; one written by an older `hotfolder retry` has only a name."""
        chosen = request.get("selection")
        if not isinstance(chosen, dict):
            return cls(targets=(str(request.get("name", "")),))
        return cls(
            targets=tuple(str(t) for t in chosen.get("targets") or ()),
            code=chosen.get("code"),
            every=bool(chosen.get("all")),
        )

    def describe(self) -> str:
        parts = list(self.targets) or (["--all"] if self.every else [])
        return " ".join(parts + ([f"--code {self.code}"] if self.code else []))


@dataclass(frozen=True)
class FailedJob:
    name: str
    code: str
    dropped_at: float


@dataclass
class Outcome:
    back: list[str] = field(default_factory=list)
    no_room: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


def failed_jobs(layout: Layout) -> list[FailedJob]:
    """Every failed or cancelled job whose files are in failed/, oldest first."""
    found = []
    for folder, _dirs, files in os.walk(layout.failed):
        for file_name in files:
            if not file_name.endswith(REASON_SUFFIX) or file_name.endswith(CANCEL_REASON_SUFFIX):
                continue
            path = os.path.join(folder, file_name)
            name = os.path.relpath(path, layout.failed)[: -len(REASON_SUFFIX)]
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    code = handle.readline().partition(":")[0].strip()
                fallback = os.stat(path).st_mtime
            except OSError:
                continue
            status = read_status(layout.status_path(name))
            dropped_at = parse_iso(status.created_at) if status is not None else None
            found.append(FailedJob(name, code, dropped_at or fallback))
    return sorted(found, key=lambda job: (job.dropped_at, _natural(job.name)))


def _natural(name: str) -> list[int | str]:
    """A name as people sort it (IMG_9 before IMG_10): the order drops seen together share."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def select(jobs_: list[FailedJob], selection: Selection) -> tuple[list[FailedJob], list[str]]:
    """The failed jobs a selection means (oldest first), and the targets that matched none."""
    by_name = {job.name: job for job in jobs_}
    chosen: dict[str, FailedJob] = {} if selection.targets else dict(by_name)
    unknown = []
    for target in selection.targets:
        matched = _match(target, jobs_, by_name)
        if not matched:
            unknown.append(target)
        chosen.update((job.name, job) for job in matched)
    picked = [job for job in jobs_ if job.name in chosen]
    if selection.code is not None:
        picked = [job for job in picked if job.code == selection.code]
    return picked, unknown


def _match(target: str, jobs_: list[FailedJob], by_name: dict[str, FailedJob]) -> list[FailedJob]:
    """A name (with or without its extension, any letter case) or FOLDER/ (every job below)."""
    text = target.replace("\\", "/").strip()
    text = text.removeprefix("./").removeprefix("failed/").removeprefix("inbox/")
    if text.endswith("/") or text in ("", "."):
        prefix = text.strip("/").removesuffix(".")
        return [j for j in jobs_ if not prefix or j.name.startswith(prefix + "/")]
    stem, _ext = split_name(text)
    for candidate in (text, stem if kind_of(text) in ("image", "sidecar") else text):
        if candidate in by_name:
            return [by_name[candidate]]
    folded = {fold(text), fold(stem)}
    return [j for j in jobs_ if fold(j.name) in folded][:1]


def retry_selection(
    jobs: Jobs, config: Config, layers: Layers, selection: Selection
) -> tuple[bool, str]:
    """Put the selected jobs back, oldest first, while they fit; report what stayed and why."""
    if not (selection.targets or selection.code or selection.every):
        return False, "say what to retry: NAME..., FOLDER/, --code CODE or --all"
    with jobs.lock:
        picked, unknown = select(failed_jobs(jobs.layout), selection)
        outcome = Outcome(unknown=unknown)
        cap = config.per_station.max_pending
        for job in picked:
            station_full = cap is not None and jobs.spool.station_count(station_of(job.name)) >= cap
            if jobs.pending_count() >= config.max_pending or station_full:
                outcome.no_room.append(job.name)
                continue
            ok, message = retry(jobs, config, layers, job.name)
            (outcome.back if ok else outcome.refused).append(job.name if ok else message)
    return _report(outcome, selection, config)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


def _report(outcome: Outcome, selection: Selection, config: Config) -> tuple[bool, str]:
    lines = []
    if outcome.back:
        lines.append(f"{len(outcome.back)} back in the queue, oldest first: {_names(outcome.back)}")
    if outcome.no_room:
        caps = f"max_pending ({config.max_pending})"
        if config.per_station.max_pending is not None:
            caps += f" or per_station.max_pending ({config.per_station.max_pending})"
        lines.append(
            f"{len(outcome.no_room)} did not fit under {caps} and stay in failed/: "
            f"{_names(outcome.no_room)}; run `hotfolder retry {selection.describe()}` again "
            "once the queue has room"
        )
    lines += outcome.refused
    if outcome.unknown:
        lines.append(
            f"no failed or cancelled job in failed/ matches {_names(outcome.unknown)}; "
            "`ls failed/` shows the names (a job's name is its path under inbox/ "
            "without the extension)"
        )
    # `--all` or `--code` with nothing to retry did all it was asked (a script may run it
    # every few minutes); names that match nothing did not.
    idle = not lines and not selection.targets
    if not lines:
        what = f" with code {selection.code}" if selection.code else ""
        lines.append(f"no failed or cancelled job{what} to retry; nothing changed")
    done = bool(outcome.back) or idle
    ok = done and not (outcome.no_room or outcome.refused or outcome.unknown)
    return ok, "\n".join(lines)
