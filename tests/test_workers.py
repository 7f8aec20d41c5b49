"""Several workers, one queue, end to end: `editor.device` as a list."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import ServiceProcess, drop_pair, has_status, read_json, wait_for, write_config
from test_jobs import admit, make_jobs

from hotfolder.config import Config
from hotfolder.errors import ConfigError


def test_estimated_waits_play_the_queue_out_over_the_workers(tmp_path: Path) -> None:
    jobs = make_jobs(tmp_path, presets={"qwen-4step": {"steps": 4, "nominal_seconds": 10}})
    slots = [2]
    jobs.board._slots = lambda: slots[0]
    admit(jobs, "a", "b", "c", "d", "e")
    jobs.board.publish()
    waits = [read_json(tmp_path / "outbox" / f"{n}.status.json") for n in "abcde"]
    shown = [w["estimated_wait_seconds"] for w in waits if w]
    assert shown == [0, 0, 10, 10, 20]
    assert all(type(wait) is int for wait in shown)  # whole seconds, as the SPEC shows them
    jobs.state.paused = True
    jobs.board.refresh.at = -1e9  # let the refresh through now
    jobs.board.publish()
    paused = read_json(tmp_path / "outbox" / "c.status.json")
    assert paused is not None and paused["estimated_wait_seconds"] is None


def test_a_device_list_is_checked_entry_by_entry() -> None:
    assert Config(editor={"device": ["cuda:0", "cuda:1"]}).editor.devices == ["cuda:0", "cuda:1"]  # type: ignore[arg-type]
    assert Config(editor={"device": "cpu"}).editor.devices == ["cpu"]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'gpu1' is not a device"):
        Config(editor={"device": ["cuda:0", "gpu1"]})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one device"):
        Config(editor={"device": []})  # type: ignore[arg-type]


def test_check_names_a_bad_device_entry(tmp_path: Path) -> None:
    from hotfolder.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("editor:\n  device: [cpu, cuda:x]\n")
    with pytest.raises(ConfigError, match=r"editor\.device.*'cuda:x' is not a device"):
        load_config(path)


@pytest.mark.slow
def test_three_workers_share_the_queue_and_say_where_each_job_ran(tmp_path: Path) -> None:
    write_config(tmp_path, editor={"name": "identity", "delay_seconds": 1.5, "device": ["cpu"] * 3})
    with ServiceProcess(tmp_path) as service:
        service.wait_ready()
        queue = read_json(tmp_path / "outbox" / "queue.json")
        assert queue is not None
        assert [w["worker"] for w in queue["workers"]] == ["cpu#1", "cpu#2", "cpu#3"]
        pids = {w["pid"] for w in queue["workers"]}
        assert len(pids) == 3 and service.proc.pid not in pids
        for index in range(6):
            drop_pair(tmp_path / "inbox", f"j{index}")

        def three_at_once() -> dict[str, object] | None:
            data = read_json(tmp_path / "outbox" / "queue.json")
            busy = [w for w in (data or {}).get("workers", []) if w["name"]]
            return data if len(busy) == 3 else None

        busy = wait_for(three_at_once, what="three jobs in flight at once")
        assert busy["processing_count"] == 3
        oldest = min(
            (
                read_json(tmp_path / "outbox" / f"{w['name']}.status.json") or {}
                for w in busy["workers"]
            ),
            key=lambda s: s.get("started_at") or "",
        )
        assert busy["current_job_id"] == oldest.get("job_id")
        names = [f"j{i}" for i in range(6)]
        wait_for(lambda: all(has_status(tmp_path, n, "completed") for n in names))
        devices = {
            (read_json(tmp_path / "outbox" / f"{n}.status.json") or {}).get("device") for n in names
        }
        assert devices == {"cpu"}
        final = wait_for(
            lambda: (
                (q := read_json(tmp_path / "outbox" / "queue.json"))
                and q["completed_count"] == 6
                and q
            )
        )
        assert all(0 < w["busy_ratio"] <= 1 for w in final["workers"])
        assert service.stop() == 0


def test_the_identity_editor_says_cpu_unless_told_otherwise() -> None:
    assert Config(editor={"name": "identity"}).editor.devices == ["cpu"]  # type: ignore[arg-type]
    assert Config(editor={"name": "identity", "device": ["cpu", "cpu"]}).editor.devices == [  # type: ignore[arg-type]
        "cpu",
        "cpu",
    ]
    assert Config().editor.devices == ["cuda"]
