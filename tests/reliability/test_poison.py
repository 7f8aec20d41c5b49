"""Poison jobs: an input that crashes the process, hangs the editor or makes it raise."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from support import (
    ServiceProcess,
    drop_pair,
    has_status,
    hotfolder,
    read_json,
    status_of,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

FAULTS = {"HOTFOLDER_FAULTS": "1"}


@pytest.fixture
def faults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault hooks on for every service this test starts (its slots inherit them)."""
    monkeypatch.setenv("HOTFOLDER_FAULTS", "1")


def workers(root: Path) -> list[dict[str, Any]]:
    queue = read_json(root / "outbox" / "queue.json") or {}
    rows: list[dict[str, Any]] = queue.get("workers") or []
    return rows


def slot_back(root: Path, restarts: int) -> dict[str, Any] | None:
    """The one slot, once it has restarted `restarts` times and has a live process again."""
    rows = workers(root)
    if len(rows) == 1 and rows[0].get("restarts") == restarts and rows[0].get("pid"):
        return rows[0]
    return None


def test_a_job_that_kills_the_process_ends_as_crashed_and_the_next_proceeds(
    tmp_path: Path, faults: None
) -> None:
    """Pass: a job whose edit kills its slot's process is tried max_attempts times, then
    lands in failed/ as `crashed`; the slot process is restarted after each crash (restarts
    2, a new pid) while the service keeps running with the same pid; the job behind it
    completes, and the service then stops with exit 0."""
    write_config(tmp_path, max_attempts=2, settle_seconds=0.1)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        first_pid = wait_for(lambda: slot_back(tmp_path, 0))["pid"]
        drop_pair(tmp_path / "inbox", "a-poison", instruction="@crash now")
        drop_pair(tmp_path / "inbox", "b-next")
        wait_for(lambda: has_status(tmp_path, "a-poison", "failed"), what="a-poison to fail")
        wait_for(lambda: has_status(tmp_path, "b-next", "completed"), what="b-next to complete")
        slot = wait_for(lambda: slot_back(tmp_path, 2), what="the slot restarted twice")
        assert service.proc.poll() is None, service.log()
        assert read_json(tmp_path / "outbox" / "queue.json")["pid"] == service.proc.pid  # type: ignore[index]
        assert service.stop() == 0, service.log()
    assert slot["pid"] != first_pid
    poison = status_of(tmp_path, "a-poison")
    assert poison is not None
    assert poison["error_code"] == "crashed"
    assert poison["attempts"] == 2
    assert (tmp_path / "failed" / "a-poison.reason.txt").read_text().startswith("crashed: ")
    assert (tmp_path / "failed" / "a-poison.jpg").exists()
    assert status_of(tmp_path, "b-next")["attempts"] == 1  # type: ignore[index]
    assert service.log().count("exited with status 137; restarting it") == 2, service.log()


def test_a_hung_editor_times_out_and_the_service_recovers(tmp_path: Path, faults: None) -> None:
    """Pass: an edit that stops reporting progress is failed as `timeout` once past the
    preset's job_timeout_seconds (1 s) plus the 5 s grace: the service kills that slot's
    process and starts a new one (restarts 1, a new pid) without exiting itself (same pid,
    still running, exit 0 on SIGTERM at the end); the next job completes."""
    write_config(
        tmp_path,
        settle_seconds=0.1,
        presets={"qwen-4step": {"steps": 4, "true_cfg_scale": 1.0, "job_timeout_seconds": 1}},
    )
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        first_pid = wait_for(lambda: slot_back(tmp_path, 0))["pid"]
        drop_pair(tmp_path / "inbox", "a-hang", instruction="@hang please")
        drop_pair(tmp_path / "inbox", "b-next")
        processing = wait_for(lambda: has_status(tmp_path, "a-hang", "processing"))
        started = time.monotonic()
        hung = wait_for(lambda: has_status(tmp_path, "a-hang", "failed"), what="the time-out")
        waited = time.monotonic() - started
        wait_for(lambda: has_status(tmp_path, "b-next", "completed"), what="b-next to complete")
        slot = wait_for(lambda: slot_back(tmp_path, 1), what="the slot restarted")
        assert service.proc.poll() is None, service.log()
        assert read_json(tmp_path / "outbox" / "queue.json")["pid"] == service.proc.pid  # type: ignore[index]
        assert service.stop() == 0, service.log()
    assert processing["attempts"] == 1
    assert hung["error_code"] == "timeout"
    assert hung["attempts"] == 1
    assert waited > 4.0, f"failed after {waited:.1f} s: before the limit and its grace"
    assert slot["pid"] != first_pid
    assert (tmp_path / "failed" / "a-hang.reason.txt").read_text().startswith("timeout: ")
    assert "a-hang hung past its time limit; killing its process" in service.log()


def test_a_slow_edit_that_reports_progress_times_out_cleanly(tmp_path: Path) -> None:
    """Pass: an edit still making progress past its limit is interrupted at the next step
    as `timeout`, without killing its slot (restarts 0, same pid) or the service."""
    write_config(
        tmp_path,
        settle_seconds=0.1,
        editor={"name": "identity", "delay_seconds": 30},
        presets={"qwen-4step": {"steps": 4, "true_cfg_scale": 1.0, "job_timeout_seconds": 1}},
    )
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        first_pid = wait_for(lambda: slot_back(tmp_path, 0))["pid"]
        drop_pair(tmp_path / "inbox", "slow")
        slow = wait_for(lambda: has_status(tmp_path, "slow", "failed"), what="the time-out")
        assert slot_back(tmp_path, 0) is not None, workers(tmp_path)
        assert workers(tmp_path)[0]["pid"] == first_pid
        assert service.stop() == 0, service.log()
    assert slow["error_code"] == "timeout"
    assert "killing its process" not in service.log()


@pytest.mark.parametrize(
    ("instruction", "code"), [("@raise", "edit_failed"), ("@oom", "out_of_memory")]
)
def test_an_editor_error_fails_only_that_job(tmp_path: Path, instruction: str, code: str) -> None:
    """Pass: the job fails with its code and reason; the next job completes; no restart."""
    write_config(tmp_path, settle_seconds=0.1)
    drop_pair(tmp_path / "inbox", "a-bad", instruction=instruction)
    drop_pair(tmp_path / "inbox", "b-next")
    result = hotfolder("run", "--once", "--root", str(tmp_path), env=FAULTS)
    assert result.returncode == 0, result.stderr[-2000:]
    assert status_of(tmp_path, "a-bad")["error_code"] == code  # type: ignore[index]
    assert has_status(tmp_path, "b-next", "completed")
    reason = (tmp_path / "failed" / "a-bad.reason.txt").read_text()
    assert reason.startswith(f"{code}: ")
    assert os.path.exists(tmp_path / "failed" / "a-bad.jpg")
