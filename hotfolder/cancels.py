"""`NAME.cancel` files dropped into inbox/: which job they mean, and what to say when none.

A cancel file that matches nothing used to vanish silently (issue 14): the person who
dropped it could not tell a typo from a job that had already finished. Now it leaves
`failed/NAME.cancel.reason.txt` saying what became of that name, and a log line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from hotfolder import fsops
from hotfolder.errors import Reason
from hotfolder.jobs import Jobs
from hotfolder.layout import Layout, shortened
from hotfolder.names import fold, kind_of, split_name
from hotfolder.rejection import write_reason
from hotfolder.status import read_status

log = logging.getLogger(__name__)

CANCEL_REASON_SUFFIX = ".cancel.reason.txt"


def job_named(jobs: Jobs, name: str) -> str:
    """`name`, or the one queued or processing job whose name differs only in case or Unicode
    form; given with its image's or sidecar's extension (`IMG_1.JPG`, as `retry` takes it),
    the job of that image."""
    name = name.strip("/")
    if jobs.find(name) is not None:
        return name
    stem, extension = split_name(name)
    names = [name, stem] if kind_of(extension) in ("image", "sidecar") else [name]
    live = [m.name for m in (*jobs.queued(), *jobs.in_flight())]
    for wanted in names:
        if jobs.find(wanted) is not None:
            return wanted
        matches = [job for job in live if fold(job) == fold(wanted)]
        if len(matches) == 1:
            return matches[0]
    return name


def act(
    jobs: Jobs,
    layout: Layout,
    relative: str,
    cancel: Callable[[str], tuple[bool, str]],
    *,
    arriving: Callable[[str], bool] = lambda name: False,
) -> bool:
    """The cancel file `relative` (to inbox/): `cancel` the job it names, or say why nothing
    was. False while the drop it names is still `arriving` (shown as waiting, not decided
    yet): the cancel file waits for it, and acts once it is held, queued or refused."""
    name = job_named(jobs, split_name(relative)[0])
    ok, message = cancel(name)
    if not ok and arriving(name):
        return False
    if not ok:
        unmatched(layout, relative, name, message)
    return True


def unmatched(layout: Layout, relative: str, name: str, message: str) -> None:
    """Leave a reason file (and a log line) for a cancel file that cancelled nothing."""
    status = read_status(layout.status_path(name))
    if status is not None:
        details = (
            f"The job {name} is {status.status.value}; only a queued or processing job can be "
            "cancelled. Nothing needs doing."
        )
    else:
        details = (
            f"No job named {name} is known. A job's name is its image's path under inbox/ "
            "without the extension (station-3/IMG_0042 for inbox/station-3/IMG_0042.jpg): drop "
            "IMG_0042.cancel in the image's folder, or run `hotfolder status` to see the queue."
        )
    where = f"{name}{CANCEL_REASON_SUFFIX}"
    if len(os.fsencode(where.rpartition("/")[2])) > fsops.NAME_MAX_BYTES:
        where = f"{shortened(name, CANCEL_REASON_SUFFIX)}{CANCEL_REASON_SUFFIX}"
    write_reason(
        layout.failed / where,
        Reason.no_image,
        f"inbox/{relative} cancelled nothing: {message}",
        details,
        [],
    )
    log.warning("inbox/%s cancelled nothing: %s", relative, message)
