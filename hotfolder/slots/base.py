"""The seam between the queue and an editor: a ticket goes in, an outcome comes out.

A slot is one editor on one device, wherever it runs (a thread, a process of its own, a
Ray actor on another host). It takes a `Ticket` (the decoded image and everything the edit
needs, as plain values that pickle), reports progress while it edits, says when its device
is free again (`edited`: the encode of that result may still be running), and gives back
an `Outcome`: the encoded result, or a reason code. The queue never sees an editor, and a
slot never sees the folders.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from hotfolder.config import Preset


@dataclass(frozen=True)
class Pixels:
    """A decoded RGB image as plain values that pickle: its bytes row by row, and its size."""

    data: bytes
    size: tuple[int, int]  # (width, height)

    @classmethod
    def of(cls, image: Image.Image) -> Pixels:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return cls(rgb.tobytes(), rgb.size)

    def image(self) -> Image.Image:
        return Image.frombytes("RGB", self.size, self.data)


@dataclass(frozen=True)
class Ticket:
    """One job as a slot receives it: decoded pixels and the edit's parameters."""

    job_id: str
    name: str
    # RGB, row by row (Image.tobytes()), upright; b"" while `_image` holds them (see there).
    pixels: bytes
    size: tuple[int, int]  # (width, height) of `pixels`
    icc_profile: bytes | None
    instruction: str
    seed: int
    preset_name: str
    preset: Preset
    steps: int
    true_cfg_scale: float
    negative_prompt: str | None
    output_format: str  # png | jpeg | webp
    output_quality: int
    output_size: str  # input (resize back to `size`) | model
    timeout_seconds: float
    metadata: dict[str, str] = field(default_factory=dict)
    # limits.oversize: fit: the upright size before the image was scaled down to `size`;
    # output.size: input scales the result back to it.
    original_size: tuple[int, int] | None = None
    exif: bytes | None = None  # the camera EXIF the result keeps (hotfolder.exifdata.kept)
    # Reference images (edit-plus `images:`), decoded and bounded like the main image.
    references: tuple[Pixels, ...] = ()
    # The decoded image itself, while the ticket stays in the service's process (a thread
    # slot): turned into `pixels` only when the ticket is pickled for a process or an actor,
    # so a thread slot's edit copies no pixels (3 MB a megapixel, twice). Nobody changes it:
    # editors make new images.
    _image: Image.Image | None = field(default=None, compare=False, repr=False)

    @classmethod
    def with_image(cls, image: Image.Image, **fields: Any) -> Ticket:
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        return cls(pixels=b"", size=rgb.size, _image=rgb, **fields)

    def image(self) -> Image.Image:
        if self._image is not None:
            return self._image
        return Image.frombytes("RGB", self.size, self.pixels)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self._image is not None:
            state["pixels"], state["_image"] = self._image.tobytes(), None
        return state

    def reference_images(self) -> tuple[Image.Image, ...]:
        return tuple(reference.image() for reference in self.references)


@dataclass(frozen=True)
class Outcome:
    """What became of a ticket: `data` (the encoded result) or an error with its reason code."""

    job_id: str
    data: bytes | None = None
    model: str | None = None
    error_code: str | None = None  # a Reason value, or "stop" (put back: the service is stopping)
    error: str | None = None
    details: str = ""
    edit_seconds: float = 0.0
    thumbnail: bytes | None = None  # the result at most 256 px, made on the encode thread

    @property
    def ok(self) -> bool:
        return self.data is not None


class SlotListener(Protocol):
    """What a slot tells the queue; called from the slot's own threads, so it must be quick."""

    def progress(self, slot: Slot, job_id: str, step: int, steps: int) -> None: ...

    def edited(self, slot: Slot, job_id: str) -> None:
        """The device is free again; the result is being encoded."""

    def outcome(self, slot: Slot, outcome: Outcome) -> None: ...

    def lost(self, slot: Slot, job_ids: list[str], why: str) -> None:
        """The slot died (process killed, crash, hang) with these jobs in it."""

    def state(self, slot: Slot, note: str | None) -> None:
        """The slot's health changed: None when ready, else why it cannot take jobs."""


class Slot(Protocol):
    """One editor on one device. `submit` only when `ready()`; everything else never blocks."""

    name: str  # unique in the service: "cpu", "cuda:0", "cpu#2", ...
    device: str  # what the status files show

    def start(self) -> None:
        """Start loading the editor (returns at once; `state` reports the result)."""

    def ready(self) -> bool:
        """Loaded, alive and not editing: a ticket sent now starts at once."""

    def submit(self, ticket: Ticket) -> None: ...

    def cancel(self, job_id: str) -> None:
        """Stop that job at its next step (its outcome says `cancelled`)."""

    def abort(self) -> None:
        """Stop every job at its next step; their outcomes say `stop`."""

    def kill(self, why: str) -> None:
        """Give up on the slot now (hung editor): its jobs are `lost`, then it restarts."""

    def stop(self) -> None:
        """Take no more tickets and shut down once the jobs in it are done."""

    def join(self, timeout: float | None = None) -> None: ...

    def info(self) -> dict[str, Any]:
        """For queue.json: pid, host, anything that tells an operator where it runs."""


class SlotCore:
    """What every slot kind tracks on the queue's side: loaded or not, the job editing, the
    jobs in it (editing or encoding); it turns the engine's events into listener calls."""

    def __init__(self, slot: Slot, listener: SlotListener) -> None:
        self.slot = slot
        self.listener = listener
        self.loaded = False
        self.editing: str | None = None
        self.in_flight: list[str] = []
        self.note: str | None = "starting"
        self._lock = threading.Lock()

    def ready(self) -> bool:
        with self._lock:
            return self.loaded and self.editing is None

    def submitted(self, job_id: str) -> None:
        with self._lock:
            self.editing = job_id
            self.in_flight.append(job_id)

    def jobs(self) -> list[str]:
        with self._lock:
            return list(self.in_flight)

    def handle(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "progress":
            self.listener.progress(self.slot, event[1], event[2], event[3])
        elif kind == "edited":
            with self._lock:
                if self.editing == event[1]:
                    self.editing = None
            self.listener.edited(self.slot, event[1])
        elif kind == "outcome":
            outcome: Outcome = event[1]
            with self._lock:
                if outcome.job_id in self.in_flight:
                    self.in_flight.remove(outcome.job_id)
            self.listener.outcome(self.slot, outcome)
        elif kind == "ready":
            with self._lock:
                self.loaded, self.note = True, None
            self.listener.state(self.slot, None)
        elif kind == "load_failed":
            self.failed(str(event[1]))

    def failed(self, note: str) -> None:
        with self._lock:
            self.loaded, self.note = False, note
        self.listener.state(self.slot, note)

    def lost(self, why: str) -> None:
        """The editor is gone with whatever was in it."""
        with self._lock:
            jobs, self.in_flight = self.in_flight, []
            self.editing = None
            self.loaded = False
        if jobs:
            self.listener.lost(self.slot, jobs, why)

    def returned(self, why: str) -> None:
        """The editor is out of reach through no fault of its jobs (a Ray cluster that went
        away): they go back to the queue as if stopped, without costing an attempt."""
        with self._lock:
            jobs, self.in_flight = self.in_flight, []
            editing, self.editing = self.editing, None
            self.loaded = False
        if editing is not None:
            self.listener.edited(self.slot, editing)
        for job_id in jobs:
            self.listener.outcome(self.slot, Outcome(job_id=job_id, error_code="stop", error=why))


def slot_names(devices: list[str]) -> list[str]:
    """`[cuda:0, cuda:1]` -> the same; `[cpu, cpu, cpu]` -> `cpu#1, cpu#2, cpu#3`."""
    names = []
    for index, device in enumerate(devices):
        twins = devices.count(device)
        names.append(device if twins == 1 else f"{device}#{devices[: index + 1].count(device)}")
    return names
