"""Crash at every step: kill the service after the i-th filesystem change, for every i."""

from __future__ import annotations

import hashlib
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from support import drop_pair, files_under, hotfolder, make_image, read_json, write_config

from tests import samples

pytestmark = pytest.mark.slow

CRASHED = 137


def run_once(root: Path, crash_after: int | None = None) -> int:
    env = {"HOTFOLDER_CRASH_AFTER_OPS": str(crash_after)} if crash_after is not None else None
    result = hotfolder("run", "--once", "--root", str(root), env=env)
    if result.returncode not in (0, CRASHED):
        raise AssertionError(f"run --once exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result.returncode


def final_state(root: Path) -> dict[str, Any]:
    """What users can see at the end, without times and ids that differ between runs."""
    state: dict[str, Any] = {}
    for folder in ("inbox", "pending", "processing", "archive", "failed", "outbox"):
        state[folder] = files_under(root / folder)
    statuses = {}
    for path in sorted((root / "outbox").rglob("*.status.json")):
        data = read_json(path)
        assert data is not None, f"{path} does not parse"
        statuses[path.name] = {
            k: data[k]
            for k in ("name", "status", "error_code", "result_path", "result_seed", "references")
        }
    state["statuses"] = statuses
    for path in sorted((root / "outbox").glob("*.png")):
        with Image.open(path) as image:
            state[path.name] = hashlib.sha256(image.tobytes()).hexdigest()
    reasons = {}
    for path in sorted((root / "failed").rglob("*.reason.txt")):
        reasons[path.name] = path.read_text().splitlines()[0].split(":")[0]
    state["reasons"] = reasons
    queue = read_json(root / "outbox" / "queue.json")
    assert queue is not None
    state["queue"] = {k: queue[k] for k in ("queued_count", "processing_count", "completed_count")}
    return state


def test_a_crash_after_any_step_ends_in_the_same_state(tmp_path: Path) -> None:
    """Pass: for every i, crashing after the i-th filesystem change and starting again
    ends with exactly the files, statuses, reasons and result pixels of a run with no
    crash (attempt counts aside), and no temporary file left anywhere."""
    template = tmp_path / "template"
    write_config(template, settle_seconds=0, sidecar_wait_seconds=0, max_attempts=5)
    # With a reference image: its copy is one more step of admission, and goes to archive/.
    make_image(template / "inbox" / "_logo.png", color=(0, 0, 255))
    drop_pair(template / "inbox", "good", seed=1, images=["_logo.png"])
    # A camera's RAW beside the JPEG: it travels with the job, so every step moves it too.
    (template / "inbox" / "good.CR3").write_bytes(samples.dng())
    drop_pair(template / "inbox" / "sub", "bad", colour="red")
    reference_root = tmp_path / "reference"
    shutil.copytree(template, reference_root)
    assert run_once(reference_root) == 0
    reference = final_state(reference_root)
    assert reference["statuses"]["good.status.json"]["status"] == "completed"
    assert reference["reasons"] == {"bad.reason.txt": "invalid_sidecar"}
    assert "good.ref1._logo.png" in reference["archive"]
    assert reference["inbox"] == ["_logo.png"]
    assert "good.CR3" in reference["archive"]

    crashes = 0
    for step in range(1, 500):
        root = tmp_path / f"crash-{step}"
        shutil.copytree(template, root)
        if run_once(root, crash_after=step) == 0:
            break  # the whole run needs fewer changes than this: every step was covered
        crashes += 1
        assert run_once(root) == 0
        state = final_state(root)
        assert state == reference, f"crash after step {step} ended differently"
        shutil.rmtree(root)
    assert crashes > 20, "the run should take many filesystem steps"


def test_a_crash_after_any_step_with_two_jobs_in_flight_ends_in_the_same_state(
    tmp_path: Path, soak: bool
) -> None:
    """Pass: with two slots (`device: [cpu, cpu]`) editing two of three jobs at once, a crash
    after the i-th filesystem change and a start again ends with exactly the files,
    statuses, reasons and result pixels of a run with no crash (attempt counts and the
    order the two slots finish in aside), and no temporary file left anywhere. Every
    step is covered with --soak; at CI size every third step, from a rotating start."""
    template = tmp_path / "template"
    write_config(
        template,
        settle_seconds=0,
        sidecar_wait_seconds=0,
        max_attempts=5,
        editor={"name": "identity", "delay_seconds": 0.2, "device": ["cpu", "cpu"]},
    )
    drop_pair(template / "inbox", "one", seed=1)
    drop_pair(template / "inbox", "two", seed=2)
    drop_pair(template / "inbox" / "sub", "three", seed=3)
    reference_root = tmp_path / "reference"
    shutil.copytree(template, reference_root)
    assert run_once(reference_root) == 0
    reference = final_state(reference_root)
    assert {s["status"] for s in reference["statuses"].values()} == {"completed"}
    assert len(reference["statuses"]) == 3

    stride = 1 if soak else 3
    crashes = 0
    for step in range(1 + random.Random().randrange(stride), 500, stride):
        root = tmp_path / f"crash-{step}"
        shutil.copytree(template, root)
        if run_once(root, crash_after=step) == 0:
            break  # the whole run needs fewer changes than this: every step was covered
        crashes += 1
        assert run_once(root) == 0
        state = final_state(root)
        assert state == reference, f"crash after step {step} ended differently"
        assert not list(root.rglob(".hf-*")), f"crash after step {step} left temporary files"
        shutil.rmtree(root)
    assert crashes * stride > 30, "the run should take many filesystem steps"
