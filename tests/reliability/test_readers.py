"""Readers polling status files at high rate never see a torn file or a state going back."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from PIL import Image
from support import ServiceProcess, wait_for, write_config

from hotfolder.fsops import remove_stale_temps

pytestmark = pytest.mark.slow

# `waiting`: a drop seen but not admitted yet (it comes before `queued`).
RANK = {"waiting": -1, "queued": 0, "processing": 1, "completed": 2, "failed": 2, "cancelled": 2}


def test_readers_see_whole_files_and_states_only_moving_forward(tmp_path: Path) -> None:
    """Pass: across 200 jobs (well over 1,000 status transitions) a reader parsing every
    status file and queue.json in a tight loop sees 0 parse errors, each job's state never
    moves backwards, and `completed` is never visible before the result file exists."""
    jobs = 200
    write_config(tmp_path, max_pending=jobs, settle_seconds=0.1)
    outbox = tmp_path / "outbox"
    errors: list[str] = []
    seen: dict[str, int] = {}
    transitions = 0
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal transitions, reads
        while not stop.is_set():
            for entry in os.scandir(outbox):
                if not entry.name.endswith(".json"):
                    continue
                try:
                    text = Path(entry.path).read_text()
                except FileNotFoundError:
                    continue
                try:
                    data = json.loads(text)
                except ValueError as e:
                    errors.append(f"{entry.name}: torn: {e}")
                    continue
                reads += 1
                if entry.name == "queue.json":
                    continue
                rank = RANK[data["status"]]
                before = seen.get(data["name"], -1)
                if rank < before:
                    errors.append(f"{data['name']}: went back to {data['status']}")
                if rank > before:
                    transitions += 1
                    seen[data["name"]] = rank
                if data["status"] == "completed" and not (tmp_path / data["result_path"]).exists():
                    errors.append(f"{data['name']}: completed before its result existed")

    staging = tmp_path / "staging"
    staging.mkdir()
    Image.new("RGB", (16, 16), (9, 9, 9)).save(staging / "one.png")
    data = (staging / "one.png").read_bytes()
    thread = threading.Thread(target=reader)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        thread.start()
        try:
            for i in range(jobs):
                (tmp_path / "inbox" / f"j{i:03d}.yaml").write_text("instruction: x\n")
                (tmp_path / "inbox" / f"j{i:03d}.png").write_bytes(data)
                if i % 20 == 19:
                    time.sleep(0.05)
            wait_for(
                lambda: all(
                    (outbox / f"j{i:03d}.png").exists()
                    and '"completed"' in (outbox / f"j{i:03d}.status.json").read_text()
                    for i in range(jobs)
                ),
                timeout=240,
            )
        finally:
            stop.set()
            thread.join()
        assert service.stop() == 0
    assert errors == []
    assert reads > 1000
    assert transitions >= jobs  # every job was seen moving at least once


def test_stale_temporaries_go_and_live_ones_stay(tmp_path: Path) -> None:
    """Pass: a temp file whose writer is dead is removed at once; one whose writer is alive
    stays until it is older than the threshold."""
    dead_pid = 2**22 + 12345  # above the default pid_max: never a live process
    dead = tmp_path / f".hf-x.status.json.{dead_pid}.abcd1234.tmp"
    live = tmp_path / f".hf-y.status.json.{os.getppid()}.abcd1234.tmp"
    other = tmp_path / ".hf-not-ours.txt"
    for path in (dead, live, other):
        path.write_text("{")
    assert remove_stale_temps(tmp_path, older_than_seconds=3600) == 1
    assert not dead.exists()
    assert live.exists()
    assert other.exists()
    assert remove_stale_temps(tmp_path, older_than_seconds=3600, now=time.time() + 7200) == 1
    assert not live.exists()
    assert other.exists()
