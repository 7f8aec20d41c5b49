"""One job's status JSON (`outbox/NAME.status.json`), field for field as the SPEC shows it,
and the ISO 8601 times it carries."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from hotfolder.spool import JobState, Manifest

SCHEMA = 1


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    stamp = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def parse_iso(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class Progress(BaseModel):
    model_config = ConfigDict(frozen=True)
    step: int
    steps: int


class Progresses:
    """The running jobs' progress, by job id, under a small lock of its own: the slot's
    thread reporting a step waits on nothing the publisher holds."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Progress] = {}

    def set(self, job_id: str, step: int, steps: int) -> None:
        with self._lock:
            self._by_id[job_id] = Progress(step=step, steps=steps)

    def of(self, job_id: str) -> Progress | None:
        with self._lock:
            return self._by_id.get(job_id)

    def forget(self, *job_ids: str) -> None:
        with self._lock:
            for job_id in job_ids:
                self._by_id.pop(job_id, None)

    def on_workers(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The dispatcher's workers (queue.json's rows), each with its job's progress (the
        SPEC's `progress`)."""
        shown = []
        for row in rows:
            job_id = row.get("job_id")
            progress = self.of(job_id) if job_id else None
            shown.append({**row, "progress": progress.model_dump() if progress else None})
        return shown


class ReferenceStatus(BaseModel):
    """A reference image the job uses: the asset's name and the sha256 of the job's copy."""

    model_config = ConfigDict(frozen=True)
    name: str
    sha256: str


class JobStatus(BaseModel):
    """The status JSON of one job, field for field as the SPEC shows it."""

    model_config = ConfigDict(frozen=True)

    schema_: int = SCHEMA
    job_id: str
    name: str
    status: JobState
    position: int | None = None
    estimated_wait_seconds: int | None = None  # whole seconds, as the SPEC shows it
    progress: Progress | None = None
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    source: str | None = None
    instruction: str | None = None
    model: str | None = None
    result_path: str | None = None
    result_seed: int | None = None
    error_code: str | None = None
    error: str | None = None
    attempts: int = 1
    device: str | None = None  # the worker's device; null until processing
    # Beyond the SPEC's fields: what the service is doing right now ("loading model"),
    # and the errors of earlier attempts, kept across retries.
    detail: str | None = None
    errors: list[str] = []
    # The reference images (edit-plus `images:`), as the job took them at admission.
    references: list[ReferenceStatus] = []

    def to_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data = {"schema": data.pop("schema_"), **data}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobStatus:
        data = dict(data)
        data["schema_"] = data.pop("schema", SCHEMA)
        return cls.model_validate(data)


def status_from_manifest(manifest: Manifest, **changes: Any) -> JobStatus:
    spec = manifest.spec
    fields: dict[str, Any] = {
        "job_id": manifest.job_id,
        "name": manifest.name,
        "status": manifest.state,
        "created_at": manifest.created_at,
        "started_at": manifest.started_at,
        "completed_at": manifest.completed_at,
        "source": manifest.source,
        "instruction": spec.get("instruction"),
        "model": spec.get("preset"),
        "result_path": manifest.result_path,
        "result_seed": manifest.seed,
        "error_code": manifest.error_code,
        "error": manifest.error,
        "attempts": manifest.attempts,
        "device": manifest.device,
        "errors": manifest.errors,
        "references": [
            ReferenceStatus(name=reference.name, sha256=reference.sha256)
            for reference in manifest.references
        ],
    }
    fields.update(changes)
    return JobStatus(**fields)


def read_status(path: Path) -> JobStatus | None:
    try:
        return JobStatus.from_json(json.loads(path.read_bytes()))
    except (OSError, ValueError):
        return None
