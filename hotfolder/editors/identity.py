"""The identity editor: returns the input unchanged, after an optional delay (plumbing and tests)."""

from __future__ import annotations

import time

from hotfolder.editors.base import EditRequest, EditResult, ProgressFn


class IdentityEditor:
    name = "identity"

    def __init__(self, delay_seconds: float = 0.0) -> None:
        self.delay_seconds = delay_seconds

    def load(self) -> None:
        return None

    def edit(self, request: EditRequest, progress: ProgressFn) -> EditResult:
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
        return EditResult(image=request.image.copy(), model="identity")
