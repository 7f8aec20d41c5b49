"""What a drop is written down as: the manifest of an admitted job, the record of a refused one.

Pure builders: they choose the job's name (the smallest free `NAME`, `NAME~2`, …) and fill
in the fields; whoever admits or rejects the drop hands the record on. A drop that was shown
as `waiting` keeps the name, job id and creation time it was shown with (`Seen`).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from hotfolder import fsops
from hotfolder.errors import Reason
from hotfolder.jobstatus import JobStatus, iso
from hotfolder.layout import LONGEST_ENDING, Layout, new_job_id
from hotfolder.names import fold, split_name
from hotfolder.pairing import Ready, Refusal
from hotfolder.rejection import Rejection
from hotfolder.sidecar import JobSpec
from hotfolder.spool import JobState, Manifest, Reference
from hotfolder.takennames import TakenNames


@dataclass(frozen=True)
class Seen:
    """What a waiting drop was shown as: the job it becomes keeps these."""

    name: str
    job_id: str
    created_at: str
    carried: bool = True  # False: the name asked for was too long and was shortened


def seen_as(
    layout: Layout,
    relative: str,
    now: float,
    reserved: set[str],
    names: TakenNames | None = None,
) -> Seen:
    """A new waiting drop at `relative` (to inbox/, without extension): its name and id.
    `names`: intake's record of the names taken (asked instead of the disk where it can)."""
    if names is not None:
        name, carried = names.carried(relative, reserved)
    else:
        name, carried = layout.carried_name(relative, reserved)
    return Seen(name=name, job_id=new_job_id(now), created_at=iso(now) or "", carried=carried)


def manifest_for(
    item: Ready,
    *,
    layout: Layout,
    relative: str,
    seq: int,
    now: float,
    seen: Seen | None = None,
    reserved: set[str] | None = None,
) -> Manifest:
    """The manifest of a ready pair whose image is at `relative` (to inbox/); draws the seed."""
    if seen is None:
        seen = seen_as(layout, split_name(relative)[0], now, reserved or set())
    base = seen.name.rpartition("/")[2]
    seed = item.spec.seed if item.spec.seed is not None else secrets.randbits(32)
    return Manifest(
        job_id=seen.job_id,
        name=seen.name,
        seq=seq,
        priority=item.spec.priority,
        created_at=seen.created_at,
        source=f"inbox/{relative}",
        image=base + split_name(item.image.name)[1],
        sidecar=base + split_name(item.sidecar.name)[1] if item.sidecar else None,
        inbox_image=layout.relative(item.image),
        inbox_sidecar=layout.relative(item.sidecar) if item.sidecar else None,
        companions=[base + split_name(path.name)[1] for path in item.companions],
        inbox_companions=[layout.relative(path) for path in item.companions],
        spec=item.spec.model_dump(mode="json"),
        seed=seed,
        references=[
            Reference(name=asset.name, sha256=asset.sha256, file=asset.copy_name(base, index))
            for index, asset in enumerate(item.references, start=1)
        ],
    )


def copies_for(item: Ready, manifest: Manifest) -> dict[str, bytes]:
    """The job's own copies of its reference images: file name beside the manifest -> bytes."""
    return {
        reference.file: asset.data
        for reference, asset in zip(manifest.references, item.references, strict=True)
    }


def rejection_for(
    refusal: Refusal,
    *,
    layout: Layout,
    relative: str,
    spec: JobSpec | None,
    now: float,
    seen: Seen | None = None,
    reserved: set[str] | None = None,
    names: TakenNames | None = None,
) -> Rejection:
    """The rejection of a drop named after its first file, which is at `relative` (to inbox/).

    Its files move to failed/ under the job's name, each keeping its extension. `spec` is the
    request, when the drop got as far as having one (`queue_full`). A name too long to carry
    is shortened, and the details say so.
    """
    if seen is None:
        seen = seen_as(layout, split_name(relative)[0], now, reserved or set(), names)
    name = seen.name
    details = (
        refusal.details if seen.carried else f"{refusal.details}\n\n{too_long(relative, name)}"
    )
    target = layout.failed / name
    status = JobStatus(
        job_id=seen.job_id,
        name=name,
        # A held drop cancelled before it became a job reads cancelled, like a queued one.
        status=JobState.cancelled if refusal.code == Reason.cancelled else JobState.failed,
        created_at=seen.created_at,
        completed_at=iso(now),
        source=f"inbox/{relative}",
        instruction=spec.instruction if spec else None,
        model=spec.preset if spec else None,
        error_code=refusal.code.value,
        error=refusal.message,
        attempts=0,
    )
    moves = [
        (layout.relative(path), layout.relative(place))
        for path, place in zip(refusal.files, _places(target, refusal.files), strict=True)
    ]
    return Rejection(
        name=name,
        moves=moves,
        code=refusal.code.value,
        message=refusal.message,
        details=details.strip(),
        status=status.to_json(),
        notify_url=str(spec.notify_url) if spec and spec.notify_url else None,
    )


def _places(target: Path, files: tuple[Path, ...]) -> list[Path]:
    """Where each file of a refused drop goes: the job's name with the file's extension; a
    second file with the same extension (an `ambiguous` drop: `Foo.jpg` and `foo.jpg`) gets
    `NAME (2).EXT`, as Windows and macOS name a second copy, so that no file is left behind
    and no two differ only in letter case."""
    places: list[Path] = []
    taken: set[str] = set()
    for path in files:
        extension = split_name(path.name)[1]
        place, copy = target.parent / (target.name + extension), 1
        while fold(place.name) in taken or (copy > 1 and os.path.lexists(place)):
            copy += 1
            place = target.parent / f"{target.name} ({copy}){extension}"
        taken.add(fold(place.name))
        places.append(place)
    return places


def too_long(relative: str, name: str) -> str:
    """What a person reads when a drop's name was too long to carry."""
    base = split_name(relative.rpartition("/")[2])[0]
    size = len(base.encode("utf-8", "surrogateescape"))
    room = fsops.NAME_MAX_BYTES - len(LONGEST_ENDING)
    return (
        f"The name {base!r} is {size} bytes; hotfolder adds {LONGEST_ENDING} to a job's name "
        f"and the filesystem allows {fsops.NAME_MAX_BYTES} bytes per name, so a name may be "
        f"at most {room} bytes. Its files are in failed/ as {name.rpartition('/')[2]}.*: "
        "rename the image (and its sidecar) to a shorter name and drop them again."
    )
