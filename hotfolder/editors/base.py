"""The seam between the service and a model: a small Protocol and its value types."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from PIL import Image

from hotfolder.config import Preset
from hotfolder.errors import HotfolderError

# Called after each step with (step, steps); raises Interrupted to stop the edit.
ProgressFn = Callable[[int, int], None]


class Interrupted(HotfolderError):
    """The job was cancelled, timed out or the service is stopping; the edit must stop now."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class OutOfMemory(HotfolderError):
    """The accelerator ran out of memory during this edit; the editor has already freed its cache."""


@dataclass(frozen=True)
class EditRequest:
    image: Image.Image  # RGB, EXIF orientation already applied
    instruction: str
    seed: int
    preset_name: str
    preset: Preset
    steps: int
    true_cfg_scale: float
    negative_prompt: str | None
    # Reference images for edit-plus (RGB, upright), after the main image; the pipeline sees
    # [image, *references]. Editors that take one image ignore them.
    references: tuple[Image.Image, ...] = ()


@dataclass(frozen=True)
class EditResult:
    image: Image.Image  # RGB; the caller resizes and encodes it
    model: str  # what made it, for status and metadata (e.g. "qwen-4step" or "identity")


class Editor(Protocol):
    name: str

    def load(self) -> None:
        """Load weights once; raise HotfolderError with a message that says what is missing."""

    def prepare(self, preset: Preset) -> None:
        """Make `preset` the active one (scheduler, LoRA); loads what it needs the first time."""

    def warm_up(self, preset: Preset) -> None:
        """Before the first job: whatever makes it as fast as the rest (the qwen editor's
        `warmup` option edits once with `preset`); nothing for editors that need none."""

    def edit(self, request: EditRequest, progress: ProgressFn) -> EditResult:
        """Edit one image. Call `progress` after each step and let Interrupted propagate."""
