"""`hotfolder status` for people: the queue as a few short tables, one job as a block.

Everything is read from the files (queue.json, status files, the spool, the history), so it
works with the service up, down or hung, and says which.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hotfolder import wording
from hotfolder.config import Config
from hotfolder.history import History
from hotfolder.jobstatus import JobStatus, parse_iso, read_status
from hotfolder.layout import Layout
from hotfolder.recent import reason_details
from hotfolder.report import job_report, queue_report, read_queue

# Queued jobs listed by name (the rest are counted), and recent failures shown.
QUEUE_ROWS = 20
FAILURE_ROWS = 5


def clock(iso_text: str | None) -> str:
    moment = parse_iso(iso_text)
    if moment is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(moment))


def grid(header: Sequence[str], rows: Sequence[Sequence[object]], indent: str = "  ") -> list[str]:
    """Columns as wide as their widest cell; the last one is left ragged."""
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append(indent + "  ".join([*padded, row[-1]]).rstrip())
    return lines


def _service_line(report: dict[str, Any], queue: dict[str, Any]) -> list[str]:
    state = report["state"]
    age = report.get("heartbeat_age_seconds")
    beat = f"heartbeat {wording.age(age)}" if age is not None else "no heartbeat yet"
    if state == "stopped":
        last = queue.get("state")
        line = "stopped"
        if last and last != "stopped":
            line += (
                f" (it did not stop cleanly: last heartbeat at {clock(queue.get('heartbeat_at'))})"
            )
        return [
            f"Service   {line}",
            "          jobs wait in inbox/ and pending/ until `hotfolder run`",
        ]
    where = report["service"].removeprefix("running ")
    lines = [f"Service   {state} {where}, observer {report.get('observer', '?')}, {beat}"]
    if state == "not responding":
        lines.append(
            f"          ! no heartbeat since {clock(queue.get('heartbeat_at'))}: "
            "the service holds its lock but has stopped publishing; look at its log"
        )
    return lines


def _summary(report: dict[str, Any]) -> str:
    parts = [
        f"{report['queued_count']} queued (max {report['max_pending']})",
        f"{report['processing_count']} processing",
    ]
    if report.get("waiting_count"):
        parts.append(f"{report['waiting_count']} arriving")
    for key in ("completed", "failed", "cancelled"):
        parts.append(f"{report.get(key + '_count', 0)} {key}")
    return "Queue     " + " · ".join(parts)


def _workers(queue: dict[str, Any]) -> list[str]:
    rows = []
    for row in queue.get("workers") or []:
        progress = row.get("progress") or {}
        step = f"{progress['step']}/{progress['steps']}" if progress else "-"
        busy = f"{round(100 * float(row.get('busy_ratio') or 0))}%"
        rows.append(
            (row["worker"], row["device"], row["state"], row.get("name") or "-", step, busy)
        )
    if not rows:
        return []
    return ["", "Workers", *grid(("WORKER", "DEVICE", "STATE", "JOB", "STEP", "BUSY"), rows)]


def _queued(layout: Layout, names: list[str], starts: bool) -> list[str]:
    if not names:
        return ["", "Queue is empty."]
    rows = []
    for position, name in enumerate(names[:QUEUE_ROWS], start=1):
        status = read_status(layout.status_path(name))
        wait = status.estimated_wait_seconds if status else None
        when = wording.wait(wait, position, starts_jobs=starts)
        instruction = (status.instruction or "") if status else ""
        rows.append((position, name, when, _short(instruction, 60)))
    lines = ["", "Queued", *grid(("#", "JOB", "STARTS IN", "INSTRUCTION"), rows)]
    if len(names) > QUEUE_ROWS:
        lines.append(f"  … and {len(names) - QUEUE_ROWS} more")
    return lines


def _failures(layout: Layout) -> list[str]:
    path = layout.private / "history.db"
    if not path.exists():
        return []
    history = History(path)
    try:
        rows = history.query(status="failed", limit=FAILURE_ROWS, newest_first=True)
    finally:
        history.close()
    if not rows:
        return []
    lines = ["", "Recent failures"]
    for row in rows:
        status = JobStatus.from_json(row)
        fix = wording.fix_for(status.error_code, reason_details(layout.reason_path(status.name)))
        lines.append(
            f"  {status.name}  {status.error_code}  {clock(status.completed_at)}\n"
            f"      {_short(status.error or '', 100)}\n      what to do: {_short(fix, 100)}"
        )
    return lines


def _short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def queue_table(config: Config) -> str:
    layout = Layout(config.root_path)
    report = queue_report(config)
    queue = read_queue(layout)
    # A stopped service's workers and notes are history, not news.
    live = queue if report["state"] != "stopped" else {}
    lines = [f"hotfolder at {report['root']}", *_service_line(report, queue), _summary(report)]
    for source, note in (live.get("notes") or {}).items():
        lines.append(f"Note      {source}: {note}")
    lines += _workers(live)
    starts = report["state"] in ("running", "starting")
    lines += _queued(layout, report["queued"], starts)
    lines += _failures(layout)
    return "\n".join(lines)


def job_block(config: Config, name: str) -> str | None:
    data = job_report(config, name)
    if data is None:
        return None
    status = JobStatus.from_json(data)
    layout = Layout(config.root_path)
    headline = status.status.value
    if status.status.value == "queued":
        headline += f", position {status.position}"
        if status.estimated_wait_seconds is not None:
            headline += f", starts in {wording.wait(status.estimated_wait_seconds, status.position, starts_jobs=True)}"
    if status.progress is not None:
        headline += f", step {status.progress.step} of {status.progress.steps}"
    rows: list[tuple[str, object]] = [
        ("instruction", status.instruction or "-"),
        ("preset", status.model or "-"),
        ("seed", status.result_seed if status.result_seed is not None else "-"),
        ("source", status.source or "-"),
        ("created", clock(status.created_at)),
        ("started", clock(status.started_at)),
        ("finished", clock(status.completed_at)),
        ("device", status.device or "-"),
        ("result", status.result_path or "-"),
        ("attempts", status.attempts),
    ]
    if status.detail:
        rows.insert(0, ("now", status.detail))
    if status.error_code:
        details = reason_details(layout.reason_path(status.name))
        rows.append(("error", f"{status.error_code}: {status.error}"))
        rows.append(("what to do", wording.fix_for(status.error_code, details)))
        rows.append(("files", f"failed/{status.name}.*"))
    width = max(len(key) for key, _ in rows)
    return "\n".join(
        [f"{status.name}  {headline}", *(f"  {key.ljust(width)}  {value}" for key, value in rows)]
    )


def is_tree(root: Path) -> bool:
    """Whether `root` is a hotfolder tree: the service has run there (`.hotfolder/`)."""
    return Layout(root).private.is_dir()
