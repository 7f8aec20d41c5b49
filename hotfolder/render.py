"""The pure edit path: a ticket in, an encoded result (or a reason) out.

The same steps for every job, in the service's slots and in `hotfolder edit`: the
editor on the upright RGB image, the result resized back to the input's size, encoded
with the input's ICC profile and hotfolder's metadata. Nothing here touches a folder.
Editing and encoding are two functions so a slot can free its device before encoding.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Executor

from hotfolder import images, thumbs
from hotfolder.editors.base import Editor, EditRequest, EditResult, Interrupted, OutOfMemory
from hotfolder.errors import Reason, Rejected
from hotfolder.slots.base import Outcome, Ticket

log = logging.getLogger(__name__)

# What an Interrupted edit's `why` becomes in its outcome.
_INTERRUPTED = {
    "cancel": (Reason.cancelled.value, "cancelled while processing", ""),
    "stop": ("stop", "the service is stopping; the job goes back to the queue", ""),
}


class StepGuard:
    """The progress callback a slot hands its editor: it stops the edit at the next step
    when the job is cancelled, the slot is told to stop, or the job is past its time."""

    def __init__(
        self,
        ticket: Ticket,
        report: Callable[[int, int], None],
        *,
        cancelled: Callable[[], bool] = lambda: False,
        aborting: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ticket = ticket
        self.report = report
        self.cancelled = cancelled
        self.aborting = aborting
        self.clock = clock
        self.deadline = clock() + ticket.timeout_seconds

    def __call__(self, step: int, steps: int) -> None:
        if self.aborting is not None and self.aborting.is_set():
            raise Interrupted("stop")
        if self.cancelled():
            raise Interrupted("cancel")
        if self.clock() > self.deadline:
            raise Interrupted("timeout")
        self.report(step, steps)


def request_of(ticket: Ticket) -> EditRequest:
    return EditRequest(
        image=ticket.image(),
        instruction=ticket.instruction,
        seed=ticket.seed,
        preset_name=ticket.preset_name,
        preset=ticket.preset,
        steps=ticket.steps,
        true_cfg_scale=ticket.true_cfg_scale,
        negative_prompt=ticket.negative_prompt,
        references=ticket.reference_images(),
    )


def edit(editor: Editor, ticket: Ticket, progress: Callable[[int, int], None]) -> EditResult:
    """Run the editor on the ticket's image (raises what the editor raises)."""
    return editor.edit(request_of(ticket), progress)


def encode(ticket: Ticket, result: EditResult, buffer: images.EncodeBuffer | None = None) -> bytes:
    """The result as the job asked for it: resized back (unless `size: model`), encoded
    (in `buffer`, the encoding thread's: see `images.EncodeBuffer`)."""
    output = result.image
    if ticket.output_size == "input":
        output = images.resize_to(output, ticket.original_size or ticket.size)
    return images.encode_result(
        output,
        fmt=ticket.output_format,
        quality=ticket.output_quality,
        icc_profile=ticket.icc_profile,
        metadata={**ticket.metadata, "model": result.model},
        camera_exif=ticket.exif,
        buffer=buffer,
    )


def render(editor: Editor, ticket: Ticket, progress: Callable[[int, int], None]) -> bytes:
    """Edit and encode in one call (`hotfolder edit`); errors propagate."""
    return encode(ticket, edit(editor, ticket, progress))


def failure(ticket: Ticket, error: BaseException, seconds: float = 0.0) -> Outcome:
    """The outcome for an edit or encode that raised, with the reason code a person reads."""
    code, message, details = _describe(ticket, error)
    return Outcome(
        job_id=ticket.job_id,
        error_code=code,
        error=message,
        details=details,
        edit_seconds=seconds,
    )


def _describe(ticket: Ticket, error: BaseException) -> tuple[str, str, str]:
    if isinstance(error, Interrupted):
        if error.why in _INTERRUPTED:
            return _INTERRUPTED[error.why]
        return (
            Reason.timeout.value,
            f"the edit took longer than {ticket.timeout_seconds:g} s",
            "Raise the preset's job_timeout_seconds, or use a faster preset.",
        )
    if isinstance(error, OutOfMemory):
        return (
            Reason.out_of_memory.value,
            f"the GPU ran out of memory: {error}",
            "Try a smaller image, or set editor.offload: model in the configuration.",
        )
    if isinstance(error, Rejected):
        return error.code.value, error.message, error.details
    log.error("edit failed for %s", ticket.name, exc_info=error)
    return (
        Reason.edit_failed.value,
        f"the edit failed: {type(error).__name__}: {error}",
        "".join(traceback.format_exception(error)),
    )


def attempt(
    editor: Editor, ticket: Ticket, progress: Callable[[int, int], None]
) -> EditResult | Outcome:
    """The edit half for a slot: the editor's result, or the failure outcome."""
    try:
        return edit(editor, ticket, progress)
    except Exception as e:
        return failure(ticket, e)


def finish(
    ticket: Ticket,
    result: EditResult,
    edit_seconds: float,
    beside: Executor | None = None,
    buffer: images.EncodeBuffer | None = None,
) -> Outcome:
    """The encode half for a slot: the encoded outcome (with the page's 'after' thumbnail,
    made on `beside` while the result encodes, if given), or the failure outcome."""
    thumbnail = beside.submit(thumbs.make, result.image, ticket.icc_profile) if beside else None
    try:
        data = encode(ticket, result, buffer)
    except Exception as e:
        return failure(ticket, e, edit_seconds)
    return Outcome(
        job_id=ticket.job_id,
        data=data,
        model=result.model,
        edit_seconds=edit_seconds,
        thumbnail=(
            thumbnail.result() if thumbnail else thumbs.make(result.image, ticket.icc_profile)
        ),
    )
