"""Stop signals are handled on a thread of their own (hotfolder.signals)."""

from __future__ import annotations

import os
import signal
import threading
import time

from hotfolder import signals
from tests.support import wait_for


def test_a_signal_that_lands_while_the_main_thread_holds_a_lock_does_not_hang() -> None:
    # What hung a CI run: the main thread inside a lock (there, Event.clear()) when the
    # signal came, and the handling taking the same lock. In a handler run in the main
    # thread, the acquire below would wait its 2 s and fail; on the signal thread it waits
    # for the main thread to let go.
    lock = threading.Lock()
    got: list[tuple[int, bool, str]] = []

    def on_signal(signum: int) -> None:
        acquired = lock.acquire(timeout=2)
        got.append((signum, acquired, threading.current_thread().name))
        if acquired:
            lock.release()

    with signals.handled(on_signal):
        with lock:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # the handler runs in here, at the main thread's next bytecode
        wait_for(lambda: bool(got), 10, what="the signal to be handled")
    assert got == [(signal.SIGTERM, True, "hotfolder-signals")]


def test_signals_are_handled_in_the_order_they_came_and_the_old_handlers_come_back() -> None:
    seen: list[int] = []
    before = signal.getsignal(signal.SIGINT)
    with signals.handled(seen.append):
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(lambda: len(seen) == 3, 10, what="three signals")
    assert seen == [signal.SIGTERM, signal.SIGINT, signal.SIGTERM]
    assert signal.getsignal(signal.SIGINT) is before
