"""The process behind a `ProcessSlot`: `python -m hotfolder.slots.child FD PARENT_PID NAME`.

It reads the configuration from its socket, loads the editor for its device once, and
runs the engine until told to stop. It ignores SIGINT and SIGTERM (a Ctrl-C in the
terminal or systemd's stop reaches the whole group; the service decides when its slots
stop) and never outlives the service: the parent-death signal kills it, and the end of
its socket makes it exit, even while its editor hangs.
"""

from __future__ import annotations

import ctypes
import logging
import os
import queue
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the end of the socket still stops us
    if os.getppid() != parent_pid:
        os._exit(0)  # the parent died before the signal was armed


def attach(fd: int, parent_pid: int) -> Connection:
    """A service child's first step: die with the service, leave SIGINT and SIGTERM to it
    (they reach the whole process group), and take its end of the socket pair."""
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return Connection(fd)


def main(argv: list[str]) -> int:
    fd, parent_pid, name = int(argv[0]), int(argv[1]), argv[2]
    conn = attach(fd, parent_pid)
    try:
        _kind, config_json, device = conn.recv()
    except (EOFError, OSError):
        return 0

    from hotfolder.config import Config
    from hotfolder.editors import make_editor
    from hotfolder.slots.engine import Engine

    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s slot {name}: %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = Config.model_validate_json(config_json)
    outgoing: queue.Queue[tuple[Any, ...] | None] = queue.Queue()

    def send_loop() -> None:
        # The editing thread only puts events in a queue; this thread waits on the socket.
        while (message := outgoing.get()) is not None:
            try:
                conn.send(message)
            except OSError:
                os._exit(0)  # the service is gone

    engine = Engine(
        make_editor(config, device),
        outgoing.put,
        device=device,
        warm_preset=config.preset(None),
    )

    def receive_loop() -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the service is gone: never outlive it, whatever the editor does
            kind = message[0]
            if kind == "ticket":
                engine.submit(message[1])
            elif kind == "cancel":
                engine.cancel(message[1])
            elif kind == "abort":
                engine.abort()
            elif kind == "stop":
                engine.stop()

    sender = threading.Thread(target=send_loop, name="hotfolder-slot-send", daemon=True)
    receiver = threading.Thread(target=receive_loop, name="hotfolder-slot-receive", daemon=True)
    sender.start()
    receiver.start()
    engine.run()
    outgoing.put(None)
    sender.join()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
