"""SIGTERM and SIGINT, handled on a thread of their own.

A Python signal handler runs in the main thread, between two of its bytecodes: if the
main thread holds a lock at that moment (inside `Event.clear()`, a socket send, a log
write) and the handler takes the same lock, the service hangs for good (CPython issue
126434). A CI run caught it once: a second SIGTERM landed while the main loop cleared its
wake-up event, and the handler set that event. So the handler here only writes the signal's
number to a pipe (a system call, no lock); a thread reads it and does the real work.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def handled(on_signal: Callable[[int], None]) -> Iterator[None]:
    """While inside, each SIGINT or SIGTERM calls `on_signal(signum)` on the signal thread,
    one at a time, in the order they came (call from the main thread)."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)

    def handler(signum: int, _frame: FrameType | None) -> None:
        # A full pipe (a storm of signals) loses nothing that matters: the ones in it act.
        with contextlib.suppress(BlockingIOError):
            os.write(write_end, bytes([signum]))

    def read_loop() -> None:
        with open(read_end, "rb", buffering=0) as pipe:
            while data := pipe.read(64):
                for signum in data:
                    try:
                        on_signal(signum)
                    except Exception:
                        log.exception("handling signal %d failed", signum)

    thread = threading.Thread(target=read_loop, name="hotfolder-signals", daemon=True)
    thread.start()
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        os.close(write_end)  # the thread reads what is left, then the end of the pipe
        thread.join(timeout=5)
