"""`hotfolder status` reads like a tool people use: tables, one job's block, --json, and it
says plainly when the service is stopped, hung, or the root is not a hotfolder folder."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from support import ServiceProcess, drop_pair, has_status, hotfolder, wait_for, write_config
from test_spool import manifest_for

from hotfolder.jobstatus import iso
from hotfolder.layout import Layout
from hotfolder.service import root_lock
from hotfolder.spool import Spool


def status(root: Path, *args: str) -> tuple[int, str, str]:
    result = hotfolder("status", *args, "--root", str(root))
    return result.returncode, result.stdout, result.stderr


def test_a_folder_that_is_not_a_hotfolder_tree_is_exit_2_not_stopped(tmp_path: Path) -> None:
    code, out, err = status(tmp_path)
    assert code == 2 and out == ""
    assert "is not a hotfolder tree (it has no .hotfolder/)" in err
    assert len(err.strip().splitlines()) == 1
    assert status(tmp_path, "--json")[0] == 2
    assert status(tmp_path / "missing", "x")[0] == 2


@pytest.mark.slow
def test_with_the_service_down_the_table_the_block_and_the_json(tmp_path: Path) -> None:
    write_config(tmp_path, sidecar_wait_seconds=1)
    drop_pair(tmp_path / "inbox", "st/good", instruction="Make the sky blue")
    drop_pair(tmp_path / "inbox", "st/bad", colour="red")
    assert hotfolder("run", "--once", "--root", str(tmp_path)).returncode == 0
    code, out, _err = status(tmp_path)
    assert code == 0
    assert out.startswith(f"hotfolder at {tmp_path}\nService   stopped\n")
    assert "1 completed · 1 failed · 0 cancelled" in out, out
    assert "Queue is empty." in out
    assert "Recent failures\n  st/bad  invalid_sidecar" in out
    assert "what to do: Fix the sidecar" in out
    code, block, _err = status(tmp_path, "st/good")
    assert code == 0
    assert block.splitlines()[0] == "st/good  completed"
    for line in ("instruction  Make the sky blue", "result       outbox/st/good.png"):
        assert line in block, block
    failed = status(tmp_path, "st/bad")[1]
    assert "what to do   Fix the sidecar" in failed and "files        failed/st/bad.*" in failed
    data = json.loads(status(tmp_path, "--json")[1])
    assert (data["service"], data["state"], data["completed_count"]) == ("stopped", "stopped", 1)
    # SPEC: `--json` prints queue.json: its every field is there.
    queue_json = json.loads((tmp_path / "outbox" / "queue.json").read_text())
    assert set(queue_json) <= set(data)
    for key in ("queue_size", "max_queue_size", "total_jobs", "heartbeat_at", "jobs"):
        assert data[key] == queue_json[key], key
    assert json.loads(status(tmp_path, "st/good", "--json")[1])["status"] == "completed"
    assert status(tmp_path, "nope")[0] == 1


def test_json_before_any_service_ran_has_queue_json_keys(tmp_path: Path) -> None:
    (tmp_path / ".hotfolder").mkdir()
    code, out, _err = status(tmp_path, "--json")
    assert code == 0
    data = json.loads(out)
    for key in ("queue_size", "max_queue_size", "queued_count", "total_jobs", "jobs"):
        assert key in data, key
    assert (data["queue_size"], data["max_queue_size"], data["jobs"]) == (0, 10, [])
    # A name never climbs out of outbox/, even to a status file that is there.
    (tmp_path / "outbox").mkdir()
    (tmp_path / "x.status.json").write_text(
        json.dumps({"job_id": "j", "name": "x", "status": "completed"})
    )
    assert status(tmp_path, "../x")[0] == 1


def test_a_service_that_holds_its_lock_without_a_heartbeat_is_not_responding(
    tmp_path: Path,
) -> None:
    layout = Layout(tmp_path)
    layout.create()
    old = iso(time.time() - 300)
    queue = {"state": "running", "heartbeat_at": old, "observer": "native", "notes": {}}
    layout.queue_json.write_text(json.dumps(queue))
    with root_lock(layout):
        _code, out, _err = status(tmp_path)
        assert f"Service   not responding (pid {os.getpid()})" in out
        assert "! no heartbeat since" in out
        assert json.loads(status(tmp_path, "--json")[1])["state"] == "not responding"
    # The lock is gone and queue.json still says running: a crash, said as such.
    out = status(tmp_path)[1]
    assert "Service   stopped (it did not stop cleanly: last heartbeat at" in out


@pytest.mark.slow
def test_with_the_service_up_workers_and_the_queue_with_waits(tmp_path: Path) -> None:
    write_config(tmp_path, editor={"name": "identity", "delay_seconds": 20})
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        drop_pair(tmp_path / "inbox", "first", instruction="Warm it up")
        wait_for(lambda: has_status(tmp_path, "first", "processing"))
        drop_pair(tmp_path / "inbox", "second", instruction="Cool it down")
        wait_for(lambda: has_status(tmp_path, "second", "queued"))

        def shown() -> str | None:
            out = status(tmp_path)[1]
            return out if "STEP" in out and "  first" in out else None

        out = wait_for(shown, what="the worker's row in the table")
        assert "Service   running (pid " in out
        rows = [line.split() for line in out.splitlines()]
        assert ["WORKER", "DEVICE", "STATE", "JOB", "STEP", "BUSY"] in rows
        assert ["cpu", "cpu", "editing", "first"] in [row[:4] for row in rows]
        assert ["#", "JOB", "STARTS", "IN", "INSTRUCTION"] in rows
        assert ["1", "second", "about"] in [row[:3] for row in rows]
        assert out.rstrip().endswith("Cool it down")
        block = status(tmp_path, "second")[1]
        assert block.startswith("second  queued, position 1, starts in about")
        service.signal()
        service.signal()  # the second signal: back to the queue, stop now
        assert service.wait() == 0


def test_with_the_service_up_the_queue_is_in_the_service_s_order(tmp_path: Path) -> None:
    # Under `dispatch: fair` the running service's order depends on the stations' turns so
    # far, which the disk does not keep: the table and --json follow queue.json's positions,
    # as the status files and the page do (found by an operator-day test).
    layout = Layout(tmp_path)
    layout.create()
    spool = Spool(layout)
    for name in ("station-1/a1", "station-2/b0"):
        spool.admit(manifest_for(spool, layout, name))
    now = iso(time.time())
    jobs = [
        {"name": "station-2/b0", "job_id": "x", "status": "queued", "position": 1},
        {"name": "station-1/a1", "job_id": "y", "status": "queued", "position": 2},
    ]
    queue = {"state": "running", "heartbeat_at": now, "notes": {}, "jobs": jobs}
    layout.queue_json.write_text(json.dumps(queue))
    with root_lock(layout):
        assert json.loads(status(tmp_path, "--json")[1])["queued"] == [j["name"] for j in jobs]
        rows = [line.split()[:2] for line in status(tmp_path)[1].splitlines()]
        assert rows.index(["1", "station-2/b0"]) < rows.index(["2", "station-1/a1"])
    # Stopped, the order a fresh start would take: admission order under fifo.
    assert json.loads(status(tmp_path, "--json")[1])["queued"] == ["station-1/a1", "station-2/b0"]


def test_the_cap_shown_is_the_running_service_s_not_this_command_s_config(
    tmp_path: Path,
) -> None:
    # The service was started with `--config` elsewhere (max_pending 2); `status` finds no
    # config of its own and would say the default 10.
    layout = Layout(tmp_path)
    layout.create()
    now = iso(time.time())
    queue = {"state": "running", "heartbeat_at": now, "max_queue_size": 2, "notes": {}}
    layout.queue_json.write_text(json.dumps(queue))
    with root_lock(layout):
        out = status(tmp_path)[1]
        assert "0 queued (max 2)" in out, out
        assert json.loads(status(tmp_path, "--json")[1])["max_pending"] == 2
