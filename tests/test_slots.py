"""One suite every slot kind passes (thread, process, Ray actor): progress, the device
freed before the encode, cancel, stop, a bad edit, and the process slot's own faults.
The Ray kind runs on the session's local cluster (`ray_cluster`) and skips without Ray;
its own faults are in tests/test_ray.py."""

from __future__ import annotations

import os
import pickle
import queue
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from hotfolder.config import Config, Preset
from hotfolder.editors.identity import FAULTS_ENV, IdentityEditor
from hotfolder.images import read_metadata
from hotfolder.slots.base import Outcome, Slot, Ticket, slot_names
from hotfolder.slots.process import ProcessSlot
from hotfolder.slots.ray import make_ray_slots
from hotfolder.slots.thread import ThreadSlot

PRESET = Preset(steps=4, true_cfg_scale=1.0, nominal_seconds=1, job_timeout_seconds=30)


class Recorder:
    """A SlotListener that keeps every event in one queue, in order."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[Any, ...]] = queue.Queue()

    def progress(self, slot: Slot, job_id: str, step: int, steps: int) -> None:
        self.events.put(("progress", job_id, step, steps))

    def edited(self, slot: Slot, job_id: str) -> None:
        self.events.put(("edited", job_id))

    def outcome(self, slot: Slot, outcome: Outcome) -> None:
        self.events.put(("outcome", outcome))

    def lost(self, slot: Slot, job_ids: list[str], why: str) -> None:
        self.events.put(("lost", job_ids, why))

    def state(self, slot: Slot, note: str | None) -> None:
        self.events.put(("state", note))

    def next(self, kind: str, timeout: float = 30) -> tuple[Any, ...]:
        """The next event of `kind`, skipping others; fail after a generous deadline."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} event within {timeout} s")
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                continue
            if event[0] == kind:
                return event

    def until_ready(self, timeout: float = 60) -> list[str]:
        """Wait for the slot to say it is ready; the notes it gave on the way."""
        notes = []
        while (note := self.next("state", timeout)[1]) is not None:
            notes.append(note)
        return notes


def ticket(
    job_id: str, *, instruction: str = "make it blue", fmt: str = "png", **extra: Any
) -> Ticket:
    image = Image.new("RGB", (40, 30), (10, 120, 200))
    fields: dict[str, Any] = {
        "job_id": job_id,
        "name": f"job-{job_id}",
        "icc_profile": None,
        "instruction": instruction,
        "seed": 7,
        "preset_name": "p",
        "preset": PRESET,
        "steps": 4,
        "true_cfg_scale": 1.0,
        "negative_prompt": None,
        "output_format": fmt,
        "output_quality": 90,
        "output_size": "input",
        "timeout_seconds": 30.0,
        "metadata": {"instruction": instruction, "seed": "7"},
    }
    fields.update(extra)
    return Ticket.with_image(image, **fields)


def test_a_ticket_carries_its_image_in_process_and_its_pixels_when_pickled() -> None:
    sent = ticket("j1")
    image = sent.image()
    assert sent.image() is image  # a thread slot's edit copies no pixels
    received = pickle.loads(pickle.dumps(sent))  # as a process slot or a Ray actor gets it
    assert received.pixels == image.tobytes()
    assert received.image().tobytes() == image.tobytes() and received.size == (40, 30)
    assert received.job_id == sent.job_id and received.metadata == sent.metadata
    assert sent.pixels == b"" and sent.image() is image  # pickling changed nothing in the sender


def identity_config(tmp_path: Path, delay: float) -> Config:
    return Config(
        root=tmp_path,
        editor={"name": "identity", "delay_seconds": delay, "device": "cpu"},  # type: ignore[arg-type]
    )


def ray_config(tmp_path: Path, address: str, delay: float, workers: int = 1) -> Config:
    return Config(
        root=tmp_path,
        editor={"name": "identity", "delay_seconds": delay, "device": "cpu"},  # type: ignore[arg-type]
        executor="ray",
        ray={"address": address, "workers": workers, "num_gpus_per_worker": 0},  # type: ignore[arg-type]
    )


# Under pytest-xdist (--dist loadgroup) every test on the session's Ray cluster runs on one
# worker, so one cluster starts, not one per worker.
@pytest.fixture(
    params=["thread", "process", pytest.param("ray", marks=pytest.mark.xdist_group("ray"))]
)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_slot(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Any]:
    monkeypatch.setenv(FAULTS_ENV, "1")
    cluster = request.getfixturevalue("ray_cluster") if kind == "ray" else None
    made: list[Slot] = []

    def make(delay: float = 0.0) -> tuple[Slot, Recorder]:
        recorder = Recorder()
        slot: Slot
        if kind == "thread":
            slot = ThreadSlot("cpu", "cpu", IdentityEditor(delay), recorder, warm_preset=PRESET)
        elif kind == "process":
            slot = ProcessSlot("cpu", "cpu", identity_config(tmp_path, delay), recorder)
        else:
            assert cluster is not None
            config = ray_config(tmp_path, cluster.address, delay)
            slot = make_ray_slots(config, recorder, lambda note: None)[0]
        slot.start()
        assert recorder.next("state", timeout=60) == ("state", None)
        assert slot.ready()
        made.append(slot)
        return slot, recorder

    yield make
    for slot in made:
        slot.stop()
        slot.join(timeout=30)


def test_a_ticket_comes_back_encoded_with_progress_and_the_device_freed_first(
    make_slot: Any,
) -> None:
    slot, events = make_slot(delay=0.2)
    slot.submit(ticket("a"))
    assert not slot.ready()  # editing
    steps = [e[2] for e in (events.next("progress"), events.next("progress"))]
    assert steps == sorted(steps)
    edited = events.next("edited")
    assert edited == ("edited", "a")
    outcome: Outcome = events.next("outcome")[1]
    assert outcome.ok and outcome.job_id == "a" and outcome.model == "identity"
    assert outcome.data is not None
    assert read_metadata(outcome.data)["seed"] == "7"
    with Image.open(__import__("io").BytesIO(outcome.data)) as image:
        assert image.size == (40, 30)
        assert image.getpixel((0, 0)) == (10, 120, 200)
    assert slot.ready()


def test_cancel_stops_the_job_at_its_next_step(make_slot: Any) -> None:
    slot, events = make_slot(delay=20)
    slot.submit(ticket("long"))
    events.next("progress")
    slot.cancel("long")
    outcome: Outcome = events.next("outcome", timeout=10)[1]
    assert outcome.error_code == "cancelled"
    assert outcome.data is None


def test_a_cancel_that_arrives_before_its_ticket_still_counts(make_slot: Any) -> None:
    slot, events = make_slot(delay=20)
    slot.cancel("early")
    slot.submit(ticket("early"))
    assert events.next("outcome", timeout=10)[1].error_code == "cancelled"


def test_abort_stops_the_job_and_says_stop(make_slot: Any) -> None:
    slot, events = make_slot(delay=20)
    slot.submit(ticket("x"))
    events.next("progress")
    slot.abort()
    assert events.next("outcome", timeout=10)[1].error_code == "stop"


@pytest.mark.parametrize(
    ("instruction", "code"), [("@raise", "edit_failed"), ("@oom", "out_of_memory")]
)
def test_an_editor_error_is_an_outcome_and_the_slot_goes_on(
    make_slot: Any, instruction: str, code: str
) -> None:
    slot, events = make_slot()
    slot.submit(ticket("bad", instruction=instruction))
    bad: Outcome = events.next("outcome")[1]
    assert bad.error_code == code
    assert bad.error
    slot.submit(ticket("good"))
    assert events.next("outcome")[1].ok


def test_a_job_past_its_time_limit_times_out_at_its_next_step(make_slot: Any) -> None:
    slot, events = make_slot(delay=20)
    slot.submit(ticket("slow", timeout_seconds=0.3))
    outcome: Outcome = events.next("outcome", timeout=10)[1]
    assert outcome.error_code == "timeout"
    assert "0.3 s" in (outcome.error or "")


def test_an_encode_error_names_the_problem(make_slot: Any) -> None:
    slot, events = make_slot()
    slot.submit(ticket("odd", fmt="gif"))
    outcome: Outcome = events.next("outcome")[1]
    assert outcome.error_code == "edit_failed"
    assert "gif" in (outcome.error or "")


# --- the process slot's own faults ---


@pytest.fixture
def process_slot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv(FAULTS_ENV, "1")
    slots: list[ProcessSlot] = []

    def make(delay: float = 0.0) -> tuple[ProcessSlot, Recorder]:
        recorder = Recorder()
        slot = ProcessSlot("cpu", "cpu", identity_config(tmp_path, delay), recorder)
        slot.start()
        assert recorder.next("state", timeout=60) == ("state", None)
        slots.append(slot)
        return slot, recorder

    yield make
    for slot in slots:
        slot.stop()
        slot.join(timeout=30)


def test_a_process_that_dies_loses_its_job_and_comes_back(process_slot: Any) -> None:
    slot, events = process_slot(delay=20)
    slot.submit(ticket("doomed"))
    events.next("progress")
    pid = slot.info()["pid"]
    os.kill(pid, signal.SIGKILL)
    lost = events.next("lost")
    assert lost[1] == ["doomed"]
    assert "SIGKILL" in lost[2]
    assert events.until_ready() == ["restarting after its process was killed by SIGKILL"]
    assert slot.info()["pid"] not in (None, pid)
    assert slot.info()["restarts"] == 1
    slot.submit(ticket("after"))
    assert events.next("outcome", timeout=60)[1].ok


def test_a_crash_inside_the_editor_is_a_lost_job_not_a_lost_service(process_slot: Any) -> None:
    slot, events = process_slot()
    slot.submit(ticket("poison", instruction="@crash"))
    lost = events.next("lost")
    assert lost[1] == ["poison"]
    assert "status 137" in lost[2]
    assert events.until_ready() == ["restarting after its process exited with status 137"]


def test_kill_ends_a_hung_editor(process_slot: Any) -> None:
    slot, events = process_slot()
    slot.submit(ticket("stuck", instruction="@hang"))
    time.sleep(0.2)  # let the child take the ticket; the kill is what is under test
    slot.kill("stuck hung past its time limit")
    lost = events.next("lost", timeout=10)
    assert lost[1] == ["stuck"]
    assert "hung" in lost[2]


def test_a_slot_that_cannot_load_says_why(tmp_path: Path) -> None:
    recorder = Recorder()
    config = Config(
        root=tmp_path,
        editor={"name": "qwen", "device": "cpu", "model": str(tmp_path / "no-such-model")},  # type: ignore[arg-type]
    )
    slot = ProcessSlot("cpu", "cpu", config, recorder)
    slot.start()
    try:
        note = recorder.next("state", timeout=120)[1]
        assert note is not None and "no-such-model" in note
        assert not slot.ready()
    finally:
        slot.stop()
        slot.join(timeout=30)


def test_slot_names_tell_twins_apart() -> None:
    assert slot_names(["cuda:0", "cuda:1"]) == ["cuda:0", "cuda:1"]
    assert slot_names(["cpu", "cpu", "cuda:0"]) == ["cpu#1", "cpu#2", "cuda:0"]


def test_a_process_that_dies_while_loading_says_so_and_is_not_ready(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FAULTS_ENV, "crash-on-load")
    recorder = Recorder()
    slot = ProcessSlot("cpu", "cpu", identity_config(tmp_path, 0), recorder)
    slot.start()
    try:
        note = recorder.next("state", timeout=60)[1]
        assert (
            note == "its process died while loading the editor: its process exited with status 134"
        )
        assert not slot.ready()
    finally:
        slot.stop()
        slot.join(timeout=30)
