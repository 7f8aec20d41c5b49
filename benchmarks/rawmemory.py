"""The service's peak memory while a 24-megapixel RAW is admitted and edited (issue 13).

`hotfolder run` with the identity editor and the photographers' limits (`oversize: fit`,
`max_dimension: 2048`, `max_raw_bytes` 150 MB), idle after loading its editor; then one
6000x4000 DNG from tests/samples (48 MB of 16-bit sensor data) and its sidecar are renamed
into inbox/ and edited. Figures: VmHWM (peak resident set) of the service and of every child
process it started, idle and after the job; what the RAW added is their difference. A fresh
service per run, as VmHWM only grows.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import psutil

from benchmarks.run import peak_rss_mb, read_json, service, wait_until, write_config
from tests import samples

SIZE = (6000, 4000)
QUICK_SIZE = (3000, 2000)


def _peaks(process: psutil.Process) -> dict[str, float]:
    """VmHWM in MB of the service and each live child (`child-PID`)."""
    found = {"service": peak_rss_mb(process)}
    for child in process.children(recursive=True):
        found[f"child-{child.pid}"] = peak_rss_mb(child)
    return found


def one_run(root: Path, size: tuple[int, int]) -> dict[str, Any]:
    write_config(
        root,
        settle_seconds=0.2,
        sidecar_wait_seconds=5,
        max_pending=50,
        limits={"oversize": "fit", "max_raw_bytes": 150_000_000, "max_file_bytes": 60_000_000},
    )
    stage = root / "stage"
    (stage / "IMG_0001.DNG").write_bytes(samples.dng(size))
    (stage / "IMG_0001.yaml").write_text("instruction: benchmark\nseed: 1\n")
    with service(root) as process:
        time.sleep(1.0)  # start-up work (the first scan) done; the editor is loaded
        idle = _peaks(process)
        for name in ("IMG_0001.DNG", "IMG_0001.yaml"):
            os.rename(stage / name, root / "inbox" / name)

        def done() -> bool:
            status = read_json(root / "outbox" / "IMG_0001.status.json")
            return bool(status and status.get("status") in ("completed", "failed"))

        wait_until(done, 300, "the RAW job to end")
        status = read_json(root / "outbox" / "IMG_0001.status.json") or {}
        after = _peaks(process)
    if status.get("status") != "completed":
        raise RuntimeError(f"the RAW job did not complete: {status}")
    total_idle = sum(idle.values())
    total_after = sum(after.get(key, 0.0) for key in after)
    return {
        "idle_mb": idle,
        "after_mb": after,
        "service_idle_mb": idle["service"],
        "service_peak_mb": after["service"],
        "added_mb": total_after - total_idle,
    }


def raw_memory_figures(base: Path, *, quick: bool, runs: int = 3) -> dict[str, Any]:
    """`runs` fresh services, one RAW each; the median of what the RAW added (MB)."""
    size = QUICK_SIZE if quick else SIZE
    found = [one_run(base / f"raw-memory-{index}", size) for index in range(runs)]
    added = sorted(run["added_mb"] for run in found)
    return {"size": list(size), "added_mb_median": added[len(added) // 2], "runs": found}
