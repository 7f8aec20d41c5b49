"""Misleading clocks: images whose mtimes are years old or in the future."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from support import (
    ServiceProcess,
    drop_pair,
    has_status,
    hotfolder,
    read_json,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow


def test_old_and_future_mtimes_neither_jump_the_queue_nor_get_stuck(tmp_path: Path) -> None:
    """Pass: a pair queued first stays first although later drops carry mtimes from 2001
    and ten years ahead; all of them complete."""
    write_config(tmp_path, settle_seconds=0.2)
    assert hotfolder("pause", "--root", str(tmp_path), cwd=tmp_path).returncode == 0
    inbox = tmp_path / "inbox"
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        drop_pair(inbox, "first")
        wait_for(lambda: has_status(tmp_path, "first", "queued"))
        for name, mtime in (("from-2001", 978_307_200.0), ("from-future", time.time() + 3.2e8)):
            image = drop_pair(inbox, name)
            os.utime(image, (mtime, mtime))
            os.utime(image.with_suffix(".yaml"), (mtime, mtime))
        wait_for(lambda: has_status(tmp_path, "from-2001", "queued"))
        wait_for(lambda: has_status(tmp_path, "from-future", "queued"))
        queue = read_json(tmp_path / "outbox" / "queue.json")
        assert queue is not None
        assert queue["jobs"][0]["name"] == "first"
        assert hotfolder("resume", "--root", str(tmp_path), cwd=tmp_path).returncode == 0
        names = ("first", "from-2001", "from-future")
        wait_for(lambda: all(has_status(tmp_path, n, "completed") for n in names))
        assert service.stop() == 0
