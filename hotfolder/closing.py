"""Closing a job that reached its final state: its files go to archive/ (or are removed) or
to failed/ with a reason file, its final status is shown, and its `notify_url` is told.

Idempotent: a crash or a refusing disk part way through is finished by doing it again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from hotfolder import rejection
from hotfolder.errors import Reason
from hotfolder.jobstatus import status_from_manifest
from hotfolder.spool import FINAL_STATES, Ending, JobState, Manifest

if TYPE_CHECKING:
    from hotfolder.jobs import Jobs


def close_job(
    jobs: Jobs,
    manifest: Manifest,
    results: Sequence[tuple[Path, bytes]] = (),
    pictures: Sequence[tuple[Path, bytes]] = (),
) -> None:
    """Write `results` (the result) and `pictures` (the page's thumbnails), record the final
    state, move the inputs where they belong and publish the final status: one ending
    (`Spool.finish`). Raises OSError."""
    assert manifest.state in FINAL_STATES
    layout, board, notifier = jobs.layout, jobs.board, jobs.notifier
    reason = None
    if manifest.state == JobState.completed:
        destination: Path | None = layout.archive if jobs.config.keep_inputs else None
    else:
        destination = layout.failed
        text = rejection.reason_text(
            manifest.error_code or Reason.edit_failed.value,
            manifest.error or "",
            manifest.error_details or "",
            manifest.files(),
        )
        reason = (layout.reason_path(manifest.name), text)
    status = status_from_manifest(manifest)
    with board.closing(status, details=manifest.error_details) as status_file:
        jobs.spool.finish(manifest, destination, Ending(results, pictures, reason, status_file))
    url = manifest.spec.get("notify_url")
    if url and notifier is not None:
        notifier.send(url, status.to_json())
