"""`hotfolder retry`: failed or cancelled jobs' files in failed/ become jobs again.

`retry NAME... | FOLDER/ | --code CODE | --all` selects jobs in failed/ (by name, with or
without the image's extension; every job under a folder; by reason code; all), oldest
first, and puts back as many as fit under `max_pending`; the rest stay and are reported.
Each keeps its original name (no `~2`), its id, attempts and earlier errors. The files
are checked as a new drop would be (the sidecar may have been fixed in failed/
meanwhile). `Jobs.retry` makes the move.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hotfolder import assets, companions, fsops
from hotfolder.assets import COPY_PATTERN, Asset
from hotfolder.config import Config
from hotfolder.errors import Rejected
from hotfolder.intake import kind_of, split_name
from hotfolder.jobs import Jobs
from hotfolder.layout import new_job_id
from hotfolder.sidecar import JobSpec, read_layer, resolve, source_of
from hotfolder.spool import Manifest, Reference
from hotfolder.status import iso, read_status

Layers = Callable[[Path], "list[tuple[str, dict[str, Any]]] | Rejected"]


def retry(jobs: Jobs, config: Config, layers: Layers, name: str) -> tuple[bool, str]:
    """Put a failed or cancelled job back into the queue; say what happened."""
    name = name.strip("/")
    with jobs.lock:
        if jobs.find(name) is not None:
            return False, f"{name} is already queued or processing"
        if jobs.pending_count() >= config.max_pending:
            return False, f"the queue is full ({config.max_pending}); retry {name} later"
        return _retry_one(jobs, config, layers, name)


def _retry_one(jobs: Jobs, config: Config, layers: Layers, name: str) -> tuple[bool, str]:
    layout = jobs.layout
    with jobs.lock:
        base = name.rpartition("/")[2]
        folder = (layout.failed / name).parent
        found = []
        if folder.is_dir():
            found = [p for p in folder.iterdir() if split_name(p.name)[0] == base]
        # A camera's RAW file beside its JPEG or HEIF goes back with it, as it came.
        image_files, beside = companions.split(
            sorted(p for p in found if kind_of(p.name) == "image")
        )
        side_files = [p for p in found if kind_of(p.name) == "sidecar"]
        if len(image_files) != 1 or len(side_files) > 1:
            what = "no image" if not image_files else "more than one image or sidecar"
            return False, f"failed/ holds {what} for {name}; nothing to retry"
        image, side = image_files[0], side_files[0] if side_files else None
        try:
            spec_layers = layers((layout.inbox / name).parent / image.name)
            if isinstance(spec_layers, Rejected):
                raise spec_layers
            if side is not None:
                limit = config.limits.max_sidecar_bytes
                spec_layers = [
                    *spec_layers,
                    (layout.relative(side), read_layer(side, max_bytes=limit)),
                ]
            spec = resolve(spec_layers, config=config)
            taken = assets.take(
                spec.images,
                (layout.inbox / name).parent / image.name,
                layout.inbox,
                limits=config.limits,
                source=source_of(spec_layers, "images"),
            )
        except Rejected as e:
            return False, f"{name} cannot be retried: {e.message} (fix it in failed/, then retry)"
        manifest = _manifest(
            jobs, name, image=image, side=side, beside=beside, spec=spec, taken=taken
        )
        _remove_old_copies(folder, base)
        copies = {ref.file: a.data for ref, a in zip(manifest.references, taken, strict=True)}
        jobs.retry(manifest, folder, copies)
    return True, f"{name} is back in the queue (attempt {manifest.attempts})"


def _manifest(
    jobs: Jobs,
    name: str,
    *,
    image: Path,
    side: Path | None,
    beside: list[Path],
    spec: JobSpec,
    taken: tuple[Asset, ...],
) -> Manifest:
    """The job again, under its own name and id, with its history of attempts."""
    layout = jobs.layout
    base = name.rpartition("/")[2]
    previous = read_status(layout.status_path(name))
    errors = list(previous.errors) if previous else []
    if previous is not None and previous.error_code:
        errors.append(f"attempt {previous.attempts}: {previous.error_code}: {previous.error}")
    seed = spec.seed
    if seed is None:
        known = previous.result_seed if previous is not None else None
        seed = known if known is not None else secrets.randbits(32)
    now = time.time()
    return Manifest(
        job_id=previous.job_id if previous else new_job_id(now),
        name=name,
        seq=jobs.spool.next_seq(),
        priority=spec.priority,
        created_at=(previous.created_at if previous else None) or iso(now) or "",
        source=(previous.source if previous else None) or layout.relative(image),
        image=image.name,
        sidecar=side.name if side else None,
        inbox_image=layout.relative(image),
        inbox_sidecar=layout.relative(side) if side else None,
        companions=[p.name for p in beside],
        inbox_companions=[layout.relative(p) for p in beside],
        spec=spec.model_dump(mode="json"),
        seed=seed,
        attempts=(previous.attempts if previous else 0) + 1,
        errors=errors,
        references=[
            Reference(name=a.name, sha256=a.sha256, file=a.copy_name(base, index))
            for index, a in enumerate(taken, start=1)
        ],
    )


def _remove_old_copies(folder: Path, base: str) -> None:
    """The reference copies the job took when it was first admitted: a retry takes the
    assets afresh, as a new drop would."""
    for path in folder.iterdir():
        rest = path.name[len(base) :]
        if path.name.startswith(base) and fnmatchcase(rest, COPY_PATTERN.removeprefix("*")):
            fsops.remove(path)
