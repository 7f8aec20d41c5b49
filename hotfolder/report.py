"""Read-only views for `hotfolder status`: from the files, with the service up or down.
`queue_report` and `job_report` are the JSON (`--json`); `table` renders them for people."""

from __future__ import annotations

import fcntl
import json
import os
import time
from typing import Any

from hotfolder.config import Config
from hotfolder.jobstatus import parse_iso, read_status, status_from_manifest
from hotfolder.layout import Layout
from hotfolder.order import QueueOrder
from hotfolder.spool import Spool
from hotfolder.view import View, queue_payload

# queue.json's heartbeat older than this, with the service holding its lock: not responding.
STALE_SECONDS = 60.0


def service_state(layout: Layout) -> str:
    """`running (pid N)` if a service holds the root's lock, else `stopped`."""
    path = layout.lock_path
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return "stopped"
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return f"running (pid {pid})"
        fcntl.flock(fd, fcntl.LOCK_UN)
        return "stopped"
    finally:
        os.close(fd)


def read_queue(layout: Layout) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(layout.queue_json.read_bytes())
    except (OSError, ValueError):
        return {}
    return data


def effective_state(service: str, queue: dict[str, Any], now: float) -> str:
    """What the service is doing, from its lock and queue.json: queue.json's `state`,
    `not responding` (a live lock with a stale heartbeat), or `stopped`."""
    if not service.startswith("running"):
        return "stopped"
    beat = parse_iso(queue.get("heartbeat_at"))
    if beat is None or now - beat > STALE_SECONDS:
        return "not responding"
    return str(queue.get("state") or "running")


def queue_report(config: Config) -> dict[str, Any]:
    layout = Layout(config.root_path)
    spool = Spool(layout)
    # Read the disk, not the service's memory, so this works when the service is down.
    queued = _scan_sorted(spool, layout, config)
    processing = list(spool.scan(layout.processing).values())
    # A tree no service has run on yet has no queue.json: its keys, as the disk has them.
    queue = read_queue(layout) or _queue_from_disk(config, queued, processing)
    service = service_state(layout)
    if service.startswith("running"):
        # The running service's order (under `fair`, the stations' turns so far), as
        # queue.json and the status files show it; jobs it has not shown yet come last.
        shown = {j.get("name"): j.get("position") for j in queue.get("jobs", [])}
        queued.sort(key=lambda m: (shown.get(m.name) is None, shown.get(m.name) or 0))
    spool_view = {
        "queued": [m.name for m in queued],
        "processing": [m.name for m in processing],
    }
    report: dict[str, Any] = {
        "root": str(layout.root),
        "service": service,
        "state": effective_state(service, queue, time.time()),
        "paused": layout.pause_flag.exists(),
        "queued_count": len(spool_view["queued"]),
        "processing_count": len(spool_view["processing"]),
        # The running service's cap (it may run with another config file than this command).
        "max_pending": queue.get("max_queue_size", config.max_pending),
    }
    for key in ("completed_count", "failed_count", "cancelled_count", "waiting_count", "observer"):
        if key in queue:
            report[key] = queue[key]
    beat = parse_iso(queue.get("heartbeat_at"))
    if beat is not None:
        report["heartbeat_age_seconds"] = round(time.time() - beat, 1)
    if queue.get("notes"):
        report["notes"] = queue["notes"]
    report["processing"] = spool_view["processing"]
    report["queued"] = spool_view["queued"]
    # `status --json` prints queue.json (SPEC), read now, with what the disk says beside it.
    return {**queue, **report}


def _queue_from_disk(config: Config, queued: list[Any], processing: list[Any]) -> dict[str, Any]:
    """queue.json as a service would write it for what the disk holds (`view.queue_payload`),
    without a heartbeat, a pid or an observer: no service has written it."""
    view = View(
        at=time.time(),
        state="stopped",
        paused=False,
        accepting=True,
        observer="",
        max_queue_size=config.max_pending,
        running=[status_from_manifest(m) for m in processing],
        queued=[status_from_manifest(m, position=n) for n, m in enumerate(queued, start=1)],
    )
    unwritten = {"updated_at": None, "heartbeat_at": None, "observer": None, "pid": None}
    return {**queue_payload(view), **unwritten}


def _scan_sorted(spool: Spool, layout: Layout, config: Config) -> list[Any]:
    # With the service down no station has had a turn yet: the order a fresh start would take.
    return QueueOrder(config.dispatch).arrange(
        spool.scan(layout.pending).values(), key=lambda m: m.sort_key, name=lambda m: m.name
    )


def job_report(config: Config, name: str) -> dict[str, Any] | None:
    layout = Layout(config.root_path)
    name = name.strip("/")
    if ".." in name.split("/"):
        return None  # job names never climb out of the tree
    status = read_status(layout.status_path(name))
    if status is not None:
        return status.to_json()
    spool = Spool(layout)
    for folder in (layout.processing, layout.pending):
        manifest = spool.scan(folder).get(name)
        if manifest is not None:
            return status_from_manifest(manifest).to_json()
    return _last_recorded(layout, name)


def _last_recorded(layout: Layout, name: str) -> dict[str, Any] | None:
    """A finished job whose status file has left outbox/ (`status_retention_seconds`): its
    last record in the history, which keeps every job's."""
    from hotfolder.history import History

    path = layout.private / "history.db"
    if not path.exists():
        return None
    history = History(path)
    try:
        records = [r for r in history.query(name=name) if r.get("name") == name]
    finally:
        history.close()
    return records[-1] if records else None
