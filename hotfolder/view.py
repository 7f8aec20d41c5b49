"""One moment of the queue as every reader sees it: `queue.json`, the page, the metrics.

The board takes a View under its lock at each publish (memory only); the writers render it
afterwards, each in its own way, without holding anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hotfolder.jobstatus import SCHEMA, JobStatus, iso
from hotfolder.recent import Finished
from hotfolder.spool import JobState


@dataclass(frozen=True)
class View:
    at: float  # wall clock: the heartbeat
    state: str  # starting | running | paused | stopping | stopped
    paused: bool
    accepting: bool
    observer: str
    max_queue_size: int
    notes: dict[str, str] = field(default_factory=dict)
    workers: list[dict[str, Any]] = field(default_factory=list)
    running: list[JobStatus] = field(default_factory=list)  # oldest start first
    queued: list[JobStatus] = field(default_factory=list)  # in queue order, with position
    waiting: list[JobStatus] = field(default_factory=list)  # drops not admitted yet
    recent: list[Finished] = field(default_factory=list)  # newest first
    failures: list[Finished] = field(default_factory=list)  # newest first
    counts: dict[JobState, int] = field(default_factory=dict)  # finished, by final state

    @property
    def finished_count(self) -> int:
        return sum(self.counts.values())


def queue_payload(view: View) -> dict[str, Any]:
    """`outbox/queue.json`: the SPEC's fields, then hotfolder's own (docs/contract-notes.md)."""
    jobs: list[dict[str, Any]] = [
        {"name": s.name, "job_id": s.job_id, "status": s.status.value, "position": None}
        for s in view.running
    ]
    jobs += [
        {"name": s.name, "job_id": s.job_id, "status": s.status.value, "position": s.position}
        for s in view.queued
    ]
    stamp = iso(view.at)
    return {
        "schema": SCHEMA,
        "queue_size": len(view.queued),
        "max_queue_size": view.max_queue_size,
        "queued_count": len(view.queued),
        "processing_count": len(view.running),
        "completed_count": view.counts.get(JobState.completed, 0),
        "failed_count": view.counts.get(JobState.failed, 0),
        "cancelled_count": view.counts.get(JobState.cancelled, 0),
        "waiting_count": len(view.waiting),
        # The oldest job in flight.
        "current_job_id": view.running[0].job_id if view.running else None,
        "total_jobs": len(view.queued) + len(view.running) + view.finished_count,
        "state": view.state,
        "paused": view.paused,
        "accepting": view.accepting,
        "updated_at": stamp,
        "heartbeat_at": stamp,
        "observer": view.observer,
        "pid": os.getpid(),
        "notes": view.notes,
        "workers": view.workers,
        "jobs": jobs,
    }
