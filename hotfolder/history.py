"""Every job's record, kept in SQLite under `.hotfolder/` long after its status file is gone."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from hotfolder.jobstatus import JobStatus

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT,
    started_at TEXT,
    completed_at TEXT,
    preset TEXT,
    seed INTEGER,
    attempts INTEGER,
    error_code TEXT,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created_at);
CREATE INDEX IF NOT EXISTS jobs_name ON jobs (name);
"""


_UPSERT = """
INSERT INTO jobs (job_id, name, status, created_at, started_at, completed_at,
                  preset, seed, attempts, error_code, record)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(job_id) DO UPDATE SET
    name=excluded.name, status=excluded.status, created_at=excluded.created_at,
    started_at=excluded.started_at, completed_at=excluded.completed_at,
    preset=excluded.preset, seed=excluded.seed, attempts=excluded.attempts,
    error_code=excluded.error_code, record=excluded.record
"""


def _row(status: JobStatus) -> tuple[Any, ...]:
    return (
        status.job_id,
        status.name,
        status.status.value,
        status.created_at,
        status.started_at,
        status.completed_at,
        status.model,
        status.result_seed,
        status.attempts,
        status.error_code,
        json.dumps(status.to_json()),
    )


def record_quietly(history: Recorder | None, statuses: Sequence[JobStatus]) -> None:
    """Record these states if there is a history; a locked or broken database is logged,
    never raised: the history is a convenience, and never stops a job."""
    if history is None or not statuses:
        return
    try:
        history.record_many(list(statuses))
    except Exception:
        names = ", ".join(status.name for status in statuses[:3])
        more = f" and {len(statuses) - 3} more" if len(statuses) > 3 else ""
        log.exception("could not record %s%s in the history", names, more)


class Recorder(Protocol):
    def record_many(self, statuses: list[JobStatus]) -> None: ...


class History:
    """A small SQLite database: one row per job, updated at every change of state."""

    def __init__(self, path: Path, *, network: bool = False) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, timeout=30)
        # WAL needs shared memory between processes, which SMB and NFS do not give.
        self._db.execute(f"PRAGMA journal_mode={'DELETE' if network else 'WAL'}")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.commit()

    def record(self, status: JobStatus) -> None:
        self.record_many([status])

    def record_many(self, statuses: list[JobStatus]) -> None:
        """Record each job's state, all in one transaction (a batch of admissions)."""
        rows = [_row(status) for status in statuses]
        with self._lock:
            self._db.executemany(_UPSERT, rows)
            self._db.commit()

    def query(
        self,
        *,
        since: str | None = None,
        status: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        clauses, params = [], []
        if since:
            clauses.append("created_at >= ?")
            params.append(since)
        if status:
            clauses.append("status = ?")
            params.append(status)
        if name:
            # A name, or a folder prefix like `station-3/`.
            clauses.append("(name = ? OR name LIKE ? ESCAPE '\\')")
            escaped = name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params += [name, escaped.rstrip("/") + "/%"]
        sql = "SELECT record FROM jobs"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        # newest_first: the most recently finished first (for "recent failures").
        order = "completed_at DESC, job_id DESC" if newest_first else "created_at, job_id"
        sql += f" ORDER BY {order}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
        return [json.loads(row[0]) for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
