"""How many small files a second eight threads write and fsync, alone and beside one busy
Python thread, for a few thread switch intervals (benchmarks/README.md, issue 14, fifth pass).

Each file is created, written (700 bytes, a manifest's size), fsynced and closed, as
`fsops` stages a batch. The fsync itself waits without the GIL; every system call around it
needs the GIL back, and beside a thread that never waits (intake deciding drops), each such
return waits for a thread switch.

    .venv/bin/python benchmarks/fsync_convoy.py [--files 2000] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SWITCH_INTERVALS = (0.005, 0.001, 0.0002)


def files_per_second(folder: Path, files: int, *, busy: bool, switch: float) -> float:
    sys.setswitchinterval(switch)
    stop = threading.Event()

    def spin() -> None:
        count = 0
        while not stop.is_set():
            count += 1

    def one(index: int) -> None:
        fd = os.open(folder / f"f{index}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, b"x" * 700)
            os.fsync(fd)
        finally:
            os.close(fd)

    spinner = threading.Thread(target=spin, daemon=True)
    if busy:
        spinner.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            started = time.perf_counter()
            list(pool.map(one, range(files)))
            return files / (time.perf_counter() - started)
    finally:
        stop.set()
        if busy:
            spinner.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    before = sys.getswitchinterval()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        for switch in SWITCH_INTERVALS:
            for busy in (False, True):
                folder = Path(scratch) / f"{switch}-{busy}"
                folder.mkdir()
                rate = files_per_second(folder, args.files, busy=busy, switch=switch)
                key = f"switch_{switch * 1000:g}ms_{'busy' if busy else 'alone'}"
                figures[key] = round(rate)
                print(f"{key}: {rate:,.0f} files/s", file=sys.stderr)
    sys.setswitchinterval(before)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
