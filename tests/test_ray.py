"""Workers as Ray actors (`executor: ray`) on a real local cluster, and each fault the SPEC
names: an actor killed mid-job, the whole cluster stopped and started again, the service
killed with jobs on actors, an actor that cannot load the editor on its node.

Every cluster here runs on 127.0.0.1 and is stopped by its own pids (tests/raycluster.py);
the tests skip without Ray (`pip install -e '.[ray]'`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from raycluster import LocalCluster, free_port
from support import (
    ServiceProcess,
    drop_pair,
    files_under,
    has_status,
    hotfolder,
    read_json,
    status_of,
    wait_for,
    write_config,
)
from test_slots import Recorder, ray_config, ticket

from hotfolder.config import Config, load_config
from hotfolder.errors import ConfigError
from hotfolder.slots.ray import RaySlot, make_ray_slots

# pytest-xdist (--dist loadgroup): the Ray tests share one worker, and so one session cluster.
pytestmark = pytest.mark.xdist_group("ray")

HOST = socket.gethostname()


def ray_service_config(root: Path, address: str | None, **ray: Any) -> Path:
    delay = ray.pop("delay", 2.0)
    return write_config(
        root,
        editor={"name": "identity", "delay_seconds": delay},
        executor="ray",
        ray={"address": address, "num_gpus_per_worker": 0, **ray},
    )


def queue_of(root: Path) -> dict[str, Any]:
    return read_json(root / "outbox" / "queue.json") or {}


def busy_workers(root: Path, count: int) -> list[dict[str, Any]] | None:
    busy = [w for w in queue_of(root).get("workers", []) if w.get("name")]
    return busy if len(busy) >= count else None


def gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(pid) for pid in pids)


# --- configuration: local stays the default and needs no Ray ---


def test_executor_local_is_the_default_and_the_service_never_imports_ray() -> None:
    code = (
        "import sys, hotfolder.cli, hotfolder.service, hotfolder.slots.ray\n"
        "from hotfolder.config import Config\n"
        "assert Config().executor == 'local'\n"
        "assert 'ray' not in sys.modules, 'the service imported ray'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_ray_block_is_checked_key_by_key(tmp_path: Path) -> None:
    assert Config(executor="ray", ray={"address": "10.0.0.5:6379"}).ray.workers == 1  # type: ignore[arg-type]
    assert Config(ray={"address": "auto"}).ray.address == "auto"  # type: ignore[arg-type]
    assert Config(ray={"num_gpus_per_worker": 0}).ray.device == "cpu"  # type: ignore[arg-type]
    path = tmp_path / "c.yaml"
    for text, message in [
        ("ray:\n  address: gpu-box\n", r"ray\.address.*HOST:PORT"),
        ("ray:\n  workers: 0\n", r"ray\.workers"),
        ("ray:\n  adress: auto\n", r"ray\.adress.*not known"),
        ("executor: slurm\n", r"executor"),
        ("executor: ray\neditor:\n  device: [cuda:0, cuda:1]\n", r"ray\.workers"),
    ]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config(path)


def test_executor_ray_without_ray_says_how_to_add_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    from hotfolder.service import Service

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    config = Config(root=tmp_path, executor="ray", editor={"name": "identity"})  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"pip install 'hotfolder\[ray\]'"):
        Service(config)


# --- one slot: an actor's own faults ---


@pytest.fixture
def ray_slot(ray_cluster: LocalCluster, tmp_path: Path) -> Iterator[Any]:
    made: list[RaySlot] = []

    def make(delay: float = 0.0) -> tuple[RaySlot, Recorder]:
        recorder = Recorder()
        slot = make_ray_slots(ray_config(tmp_path, ray_cluster.address, delay), recorder, print)[0]
        slot.start()
        assert recorder.next("state", timeout=120) == ("state", None)
        made.append(slot)
        return slot, recorder

    yield make
    for slot in made:
        slot.stop()
        slot.join(timeout=60)


def test_an_actor_killed_mid_job_loses_its_job_and_a_new_actor_takes_its_place(
    ray_slot: Any,
) -> None:
    slot, events = ray_slot(delay=3)
    first = slot.info()
    assert first["kind"] == "ray" and first["node_ip"] == "127.0.0.1" and first["actor_id"]
    assert slot.device == f"{HOST}/cpu"
    slot.submit(ticket("doomed"))
    events.next("progress")
    os.kill(first["pid"], signal.SIGKILL)
    lost = events.next("lost", timeout=60)
    assert lost[1] == ["doomed"]
    assert f"{HOST} (127.0.0.1, node {first['node_id'][:8]})" in lost[2]
    notes = events.until_ready(timeout=120)
    assert notes and notes[0].startswith("restarting after")
    after = slot.info()
    assert after["restarts"] == 1 and after["pid"] != first["pid"]
    assert after["actor_id"] != first["actor_id"]
    slot.submit(ticket("after"))
    assert events.next("outcome", timeout=60)[1].ok


def test_kill_ends_an_actor_whose_editor_hangs(ray_slot: Any) -> None:
    slot, events = ray_slot()
    slot.submit(ticket("stuck", instruction="@hang"))
    events.next("progress")
    slot.kill("stuck hung past its time limit")
    lost = events.next("lost", timeout=60)
    assert lost[1] == ["stuck"] and "hung past its time limit" in lost[2]
    events.until_ready(timeout=120)


# --- the service on a cluster ---


@pytest.mark.slow
def test_three_actors_share_the_queue_and_a_killed_one_costs_its_job_one_attempt(
    tmp_path: Path, ray_cluster: LocalCluster
) -> None:
    ray_service_config(tmp_path, ray_cluster.address, workers=3, delay=1.5)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready(timeout=120)
        workers = queue_of(tmp_path)["workers"]
        assert [w["worker"] for w in workers] == ["ray#1", "ray#2", "ray#3"]
        assert all(w["kind"] == "ray" and w["actor_id"] for w in workers)
        assert all(w["device"] == f"{HOST}/cpu" and w["node_ip"] == "127.0.0.1" for w in workers)
        pids = {w["pid"] for w in workers}
        assert len(pids) == 3 and service.proc.pid not in pids
        names = [f"j{index}" for index in range(6)]
        for name in names:
            drop_pair(tmp_path / "inbox", name)
        busy = wait_for(lambda: busy_workers(tmp_path, 3), what="three jobs on three actors")
        victim = busy[0]
        os.kill(victim["pid"], signal.SIGKILL)
        wait_for(lambda: all(has_status(tmp_path, n, "completed") for n in names), timeout=120)
        statuses = {n: status_of(tmp_path, n) or {} for n in names}
        assert statuses[victim["name"]]["attempts"] == 2
        assert "died" in statuses[victim["name"]]["errors"][0]
        assert [n for n, s in statuses.items() if s["attempts"] != 1] == [victim["name"]]
        assert {s["device"] for s in statuses.values()} == {f"{HOST}/cpu"}
        replaced = next(w for w in queue_of(tmp_path)["workers"] if w["worker"] == victim["worker"])
        assert replaced["restarts"] == 1 and replaced["pid"] != victim["pid"]
        actors = [w["pid"] for w in queue_of(tmp_path)["workers"]]
        assert service.stop() == 0, service.log()
    assert results_in(tmp_path / "outbox") == sorted(
        [f"{n}.png" for n in names] + [f"{n}.status.json" for n in names] + ["queue.json"]
    )
    wait_for(lambda: gone(actors), what="the actors to end with the service")


def results_in(outbox: Path) -> list[str]:
    """What outbox/ holds for stations: results, status files, queue.json (not the page's)."""
    return sorted(
        p for p in files_under(outbox) if not p.startswith(".thumbs/") and p != "index.html"
    )


@pytest.mark.slow
def test_a_service_killed_with_jobs_on_actors_requeues_them_once(
    tmp_path: Path, ray_cluster: LocalCluster
) -> None:
    ray_service_config(tmp_path, ray_cluster.address, workers=2, delay=3)
    for name in ("a", "b"):
        drop_pair(tmp_path / "inbox", name)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready(timeout=120)
        busy = wait_for(lambda: busy_workers(tmp_path, 2), what="both jobs on actors")
        service.kill()
    # The bridge dies with the service and Ray ends the actors it owned: nobody is left
    # to finish these jobs behind the next service's back.
    wait_for(lambda: gone([w["pid"] for w in busy]), what="the old actors to end")
    assert files_under(tmp_path / "processing")
    with ServiceProcess(tmp_path) as service:
        service.wait_ready(timeout=120)
        wait_for(lambda: all(has_status(tmp_path, n, "completed") for n in "ab"), timeout=120)
        assert service.stop() == 0, service.log()
    for name in "ab":
        status = status_of(tmp_path, name) or {}
        assert status["attempts"] == 2, status
        assert status["errors"] == ["attempt 1: the service stopped during this job"]
    assert results_in(tmp_path / "outbox") == [
        "a.png",
        "a.status.json",
        "b.png",
        "b.status.json",
        "queue.json",
    ]


@pytest.mark.slow
def test_a_stopped_cluster_pauses_dispatch_until_it_is_back(tmp_path: Path, ray_temp: Path) -> None:
    pytest.importorskip("ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    cluster = LocalCluster(ray_temp, num_cpus=2, env={"HOTFOLDER_FAULTS": "1"})
    root = tmp_path / "root"
    root.mkdir()
    ray_service_config(root, cluster.address, workers=1, delay=3)
    try:
        cluster.start()
        with ServiceProcess(root) as service:
            service.wait_ready(timeout=120)
            for name in ("first", "second"):
                drop_pair(root / "inbox", name)
            wait_for(lambda: has_status(root, "first", "processing"), what="first on an actor")
            cluster.stop()
            note = wait_for(
                lambda: queue_of(root).get("notes", {}).get("executor"), what="the executor note"
            )
            assert cluster.address in note and "jobs stay queued" in note
            back = wait_for(lambda: has_status(root, "first", "queued"), what="first requeued")
            assert back["attempts"] == 1 and back["position"] == 1
            beat = queue_of(root)["heartbeat_at"]
            wait_for(lambda: queue_of(root)["heartbeat_at"] != beat, what="a live heartbeat")
            assert service.proc.poll() is None
            assert has_status(root, "second", "queued")
            cluster.start()  # the same address again
            wait_for(lambda: has_status(root, "second", "completed"), timeout=180)
            first = has_status(root, "first", "completed")
            assert first is not None and first["attempts"] == 1
            assert "executor" not in queue_of(root).get("notes", {})
            assert service.stop() == 0, service.log()
    finally:
        cluster.stop()


@pytest.mark.slow
def test_a_service_started_while_the_cluster_is_away_runs_and_waits_for_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    nowhere = f"127.0.0.1:{free_port()}"
    ray_service_config(tmp_path, nowhere, workers=2)
    with ServiceProcess(tmp_path) as service:
        service.wait_ready(timeout=60)
        note = wait_for(lambda: queue_of(tmp_path).get("notes", {}).get("executor"))
        assert f"no Ray cluster answers at {nowhere}" in note
        drop_pair(tmp_path / "inbox", "early")
        queued = wait_for(lambda: has_status(tmp_path, "early", "queued"), what="a queued job")
        assert queued["position"] == 1
        assert service.stop() == 0, service.log()


@pytest.mark.slow
def test_an_actor_that_cannot_load_names_its_node_and_the_other_goes_on(
    tmp_path: Path, ray_temp: Path, tiny_qwen_model: Path
) -> None:
    """Two nodes; `editor.model: ~/models/tiny-qwen` is there on one (its HOME has it) and
    missing on the other, as when one GPU host lacks the weights."""
    pytest.importorskip("ray")
    os.environ["RAY_AUTH_MODE"] = "disabled"
    with_weights, without = tmp_path / "home-a", tmp_path / "home-b"
    (with_weights / "models").mkdir(parents=True)
    (with_weights / "models" / "tiny-qwen").symlink_to(tiny_qwen_model)
    without.mkdir()
    cluster = LocalCluster(ray_temp, num_cpus=1, env={"HOME": str(with_weights)})
    root = tmp_path / "root"
    root.mkdir()
    write_config(
        root,
        editor={
            "name": "qwen",
            "model": "~/models/tiny-qwen",
            "device": "cpu",
            "dtype": "float32",
            "max_pixels": 4096,
        },
        presets={"tiny": {"steps": 2, "true_cfg_scale": 1.0, "nominal_seconds": 1}},
        default_preset="tiny",
        executor="ray",
        ray={"address": cluster.address, "workers": 2, "num_gpus_per_worker": 0},
    )
    try:
        cluster.start()
        cluster.add_node(num_cpus=1, env={"HOME": str(without)})

        def one_loaded_one_broken() -> tuple[dict[str, Any], str] | None:
            data = queue_of(root)
            ready = [w for w in data.get("workers", []) if w.get("state") == "ready"]
            broken = [v for k, v in data.get("notes", {}).items() if "cannot load" in v]
            return (ready[0], broken[0]) if ready and broken else None

        with ServiceProcess(root) as service:
            loaded, note = wait_for(one_loaded_one_broken, timeout=240, what="one up, one not")
            assert f"cannot load the editor on {HOST} (127.0.0.1, node " in note
            assert f"{without}/models/tiny-qwen does not exist" in note
            assert f"node {loaded['node_id'][:8]})" not in note  # the other node
            drop_pair(root / "inbox", "IMG_1", seed=5)
            done = wait_for(lambda: has_status(root, "IMG_1", "completed"), timeout=240)
            assert done["device"] == f"{HOST}/cpu" and done["model"] == "tiny"
            assert service.stop() == 0, service.log()
    finally:
        cluster.stop()


@pytest.mark.slow
def test_run_once_on_a_private_ray(
    tmp_path: Path, ray_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`address: null`: the service starts a Ray of its own on this machine, and ends it."""
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_TMPDIR", str(ray_temp))  # not /tmp/ray
    monkeypatch.setenv("RAY_enable_worker_prestart", "0")
    ray_service_config(tmp_path, None, workers=2, delay=0.5)
    for name in ("p1", "p2", "p3"):
        drop_pair(tmp_path / "inbox", name)
    result = hotfolder("run", "--once", "--root", str(tmp_path), cwd=tmp_path, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("p1", "p2", "p3"):
        status = has_status(tmp_path, name, "completed")
        assert status is not None and status["device"] == f"{HOST}/cpu"
    workers = json.loads((tmp_path / "outbox" / "queue.json").read_text())["workers"]
    assert [w["worker"] for w in workers] == ["ray#1", "ray#2"]
