"""How long one tick of the intake may work before it yields to the service loop."""

from __future__ import annotations

import time
from collections.abc import Callable


class TickBudget:
    """A deadline per stage of a tick; the first piece of work of a stage always runs.

    10,000 files dropped at once take many ticks this way, and the loop (heartbeat,
    controls) stays responsive throughout. `behind` says a tick stopped for lack of time,
    so the loop comes back at once instead of sleeping.
    """

    def __init__(self, seconds: float, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.monotonic = monotonic
        self.behind = False
        self._deadline = 0.0
        self._work = 0

    def start(self) -> None:
        self._deadline = self.monotonic() + self.seconds
        self._work = 0

    def used(self) -> None:
        """Count one piece of work done."""
        self._work += 1

    def spent(self) -> bool:
        """Whether the time is up (after at least one piece of work); if so, note it in `behind`."""
        spent = self._work > 0 and self.monotonic() >= self._deadline
        self.behind = self.behind or spent
        return spent
