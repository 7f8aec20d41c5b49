"""The identity editor: returns the input unchanged, after an optional delay (plumbing and tests)."""

from __future__ import annotations

import os
import time

from hotfolder.config import Preset
from hotfolder.editors.base import EditRequest, EditResult, OutOfMemory, ProgressFn

# Fault injection for the reliability tests: with this variable set, an instruction that
# contains @crash kills the process, @hang stops without progress, @raise raises, @oom
# reports out of memory; set to "crash-on-load", loading kills the process. Without it,
# instructions are never looked at.
FAULTS_ENV = "HOTFOLDER_FAULTS"


def _inject_fault(instruction: str) -> None:
    if "@crash" in instruction:
        os._exit(137)
    if "@hang" in instruction:
        while True:
            time.sleep(3600)
    if "@raise" in instruction:
        raise RuntimeError("injected fault")
    if "@oom" in instruction:
        raise OutOfMemory("injected: CUDA out of memory")


class IdentityEditor:
    name = "identity"

    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.delay_seconds = delay_seconds

    def load(self) -> None:
        if os.environ.get(FAULTS_ENV) == "crash-on-load":
            os._exit(134)

    def prepare(self, preset: Preset) -> None:
        return None

    def warm_up(self, preset: Preset) -> None:
        return None

    def edit(self, request: EditRequest, progress: ProgressFn) -> EditResult:
        if os.environ.get(FAULTS_ENV):
            _inject_fault(request.instruction)
        steps = max(1, request.steps)
        # Sleep in short slices, calling progress between them, so a cancel or stop lands
        # within a tenth of a second whatever the delay.
        deadline = time.monotonic() + self.delay_seconds
        for step in range(1, steps + 1):
            step_end = deadline - self.delay_seconds * (steps - step) / steps
            while (left := step_end - time.monotonic()) > 0:
                time.sleep(min(left, 0.1))
                progress(step - 1, steps)
            progress(step, steps)
        # The input itself: nothing downstream changes a result's pixels (the encoder and the
        # 'after' thumbnail read them), and a copy is 0.5 ms a megapixel of nothing.
        return EditResult(image=request.image, model="identity")
