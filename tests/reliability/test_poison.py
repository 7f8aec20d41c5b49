"""Poison jobs: an input that crashes the process, hangs the editor or makes it raise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import cli_env, drop_pair, has_status, hotfolder, status_of, wait_for, write_config

pytestmark = pytest.mark.slow

FAULTS = {"HOTFOLDER_FAULTS": "1"}


def supervise(root: Path, until: list[str], restarts: int = 6, timeout: float = 120) -> list[int]:
    """Run the service like systemd's Restart=always would, until every name in `until` is done."""
    env = {**cli_env(), **FAULTS}
    codes: list[int] = []
    log = (root / "service.log").open("ab")
    try:
        for _ in range(restarts):
            proc = subprocess.Popen(
                [sys.executable, "-m", "hotfolder", "run", "--root", str(root)],
                env=env,
                cwd=root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_for(
                    lambda p=proc: (
                        p.poll() is not None  # type: ignore[misc]
                        or all(has_status(root, n, "completed", "failed") for n in until)
                    ),
                    timeout=timeout,
                )
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=60)
            codes.append(proc.returncode)
            if all(has_status(root, n, "completed", "failed") for n in until):
                return codes
    finally:
        log.close()
    raise AssertionError(f"not done after {restarts} starts; exit codes {codes}")


def test_a_job_that_kills_the_process_ends_as_crashed_and_the_next_proceeds(tmp_path: Path) -> None:
    """Pass: a job whose edit kills the process is tried max_attempts times, then lands in
    failed/ as `crashed`; the job behind it completes."""
    write_config(tmp_path, max_attempts=2, settle_seconds=0.1)
    drop_pair(tmp_path / "inbox", "a-poison", instruction="@crash now")
    drop_pair(tmp_path / "inbox", "b-next")
    codes = supervise(tmp_path, ["a-poison", "b-next"])
    poison = status_of(tmp_path, "a-poison")
    assert poison is not None
    assert poison["error_code"] == "crashed"
    assert poison["attempts"] == 2
    assert codes.count(137) == 2
    assert has_status(tmp_path, "b-next", "completed")
    assert (tmp_path / "failed" / "a-poison.reason.txt").read_text().startswith("crashed: ")


def test_a_hung_editor_times_out_and_the_service_recovers(tmp_path: Path) -> None:
    """Pass: an edit that stops reporting progress is failed as `timeout` once past the
    preset's job_timeout_seconds (plus a grace), the service exits for its supervisor,
    and after the restart the next job completes."""
    write_config(
        tmp_path,
        settle_seconds=0.1,
        presets={"qwen-4step": {"steps": 4, "true_cfg_scale": 1.0, "job_timeout_seconds": 1}},
    )
    drop_pair(tmp_path / "inbox", "a-hang", instruction="@hang please")
    drop_pair(tmp_path / "inbox", "b-next")
    codes = supervise(tmp_path, ["a-hang", "b-next"])
    hung = status_of(tmp_path, "a-hang")
    assert hung is not None
    assert hung["error_code"] == "timeout"
    assert 3 in codes
    assert has_status(tmp_path, "b-next", "completed")


def test_a_slow_edit_that_reports_progress_times_out_cleanly(tmp_path: Path) -> None:
    """Pass: an edit still making progress past its limit is interrupted at the next step
    as `timeout`, without restarting the service."""
    write_config(
        tmp_path,
        settle_seconds=0.1,
        editor={"name": "identity", "delay_seconds": 30},
        presets={"qwen-4step": {"steps": 4, "true_cfg_scale": 1.0, "job_timeout_seconds": 1}},
    )
    drop_pair(tmp_path / "inbox", "slow")
    codes = supervise(tmp_path, ["slow"])
    assert status_of(tmp_path, "slow")["error_code"] == "timeout"  # type: ignore[index]
    assert codes == [0]  # stopped by the supervisor (SIGTERM) at the end, never crashed


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
