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
        # Sleep in slices so progress is reported and a cancel or stop lands promptly.
        slice_seconds = self.delay_seconds / steps
        for step in range(1, steps + 1):
            if slice_seconds:
                time.sleep(slice_seconds)
            progress(step, steps)
        return EditResult(image=request.image.copy(), model="identity")
