"""outbox/index.html: escaped, paced, and read in a real browser (Chromium, headless)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from browser import load, needs_chromium, screenshot
from PIL import Image
from support import drop_pair, hotfolder, make_image, write_config, write_sidecar

from hotfolder.jobstatus import JobStatus, Progress, iso
from hotfolder.layout import Layout
from hotfolder.page import Page, render
from hotfolder.publisher import RENDER_MIN_SECONDS, Paced
from hotfolder.recent import Finished
from hotfolder.spool import JobState
from hotfolder.view import View

XSS = "<img src=x onerror=alert(1)>"


def status(name: str, state: JobState, **fields: object) -> JobStatus:
    fields.setdefault("instruction", "Make the sky blue")
    return JobStatus(job_id=f"id-{name}", name=name, status=state, **fields)  # type: ignore[arg-type]


def busy_view(at: float, state: str = "running") -> View:
    """Two workers (one editing), a queue, a drop arriving, a failure and a completed job."""
    now = iso(at)
    running = status("station-3/IMG_0042", JobState.processing, started_at=now, device="cuda:0")
    queued = [
        status(
            f"station-3/IMG_{n}", JobState.queued, position=i, estimated_wait_seconds=20.0 * (i - 1)
        )
        for i, n in enumerate(("0043", "0044"), start=1)
    ]
    queued.append(status("rush/<b>bold</b>", JobState.queued, position=3, instruction=XSS))
    failed = status(
        "station-2/bad", JobState.failed, error_code="invalid_sidecar",
        error="sidecar key `colour` is not known", completed_at=now, instruction=None,
    )  # fmt: skip
    done = status(
        "station-1/beach",
        JobState.completed,
        completed_at=now,
        result_path="outbox/station-1/beach.png",
    )
    workers = [
        {"worker": "cuda:0", "device": "cuda:0", "name": running.name, "job_id": running.job_id,
         "busy_ratio": 0.97, "state": "editing", "progress": {"step": 2, "steps": 4}},
        {"worker": "cuda:1", "device": "cuda:1", "name": None, "job_id": None,
         "busy_ratio": 0.5, "state": "ready", "progress": None},
    ]  # fmt: skip
    return View(
        at=at,
        state=state,
        paused=state == "paused",
        accepting=True,
        observer="polling",
        max_queue_size=10,
        notes={"intake": f"inbox/ is unreachable: {XSS}"},
        workers=workers,
        running=[running.model_copy(update={"progress": Progress(step=2, steps=4)})],
        queued=queued,
        waiting=[
            status("station-1/IMG_9", JobState.waiting, detail="waiting for its sidecar"),
            status(
                "station-4/IMG_7",
                JobState.waiting,
                detail="waiting for room in the queue",
                position=4,
                estimated_wait_seconds=60,
            ),
        ],
        recent=[Finished(done, at, thumbs=(False, False), seconds=21.0), Finished(failed, at)],
        failures=[Finished(failed, at, details="Remove the key `colour` from bad.yaml.")],
        counts={JobState.completed: 1, JobState.failed: 1, JobState.cancelled: 0},
    )


def test_every_text_from_a_drop_is_escaped() -> None:
    html = render(busy_view(time.time()))
    assert XSS not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>bold</b>" not in html
    assert "rush/&lt;b&gt;bold&lt;/b&gt;" in html
    assert "inbox/ is unreachable: &lt;img" in html


def test_links_are_relative_and_percent_encoded(tmp_path: Path) -> None:
    at = time.time()
    done = status(
        "a b/#1", JobState.completed, completed_at=iso(at), result_path="outbox/a b/#1.png"
    )
    view = busy_view(at)
    view = View(**{**view.__dict__, "recent": [Finished(done, at, thumbs=(True, True))]})
    html = render(view)
    assert 'src=".thumbs/a%20b/%231.before.jpg"' in html
    assert 'href="a%20b/%231.png"' in html
    assert "http://" not in html and "https://" not in html  # nothing fetched


def test_waits_read_on_hold_while_paused_or_stopped() -> None:
    for state in ("paused", "stopped"):
        html = render(busy_view(time.time(), state=state))
        assert "on hold" in html and "about 20 s" not in html
    assert "about 20 s" in render(busy_view(time.time()))


def test_a_service_not_taking_drops_says_so_where_its_state_is() -> None:
    view = busy_view(time.time())
    assert "Taking new drops" in render(view)
    shut = render(View(**{**view.__dict__, "accepting": False}))
    assert "Taking new drops" not in shut
    assert "Not taking new drops right now (they wait in inbox/); the queue goes on." in shut
    # SPEC: the page shows the state "not accepting", in its badge.
    assert 'class="pill refusing">Not accepting</span>' in shut


def test_the_page_is_written_at_most_once_a_second_and_with_every_heartbeat(
    tmp_path: Path,
) -> None:
    writes: list[float] = []
    now = [100.0]

    class Counting:
        name = "counter"

        def write(self, view: View) -> None:
            writes.append(now[0])

    paced = Paced(Counting(), lambda: now[0])
    for _ in range(10):  # ten changes within half a second
        paced.offer(busy_view(time.time()))
        now[0] += 0.05
    assert len(writes) == 1
    assert paced.due() == pytest.approx(100.0 + RENDER_MIN_SECONDS)
    now[0] = 101.0
    paced.flush()  # the publisher flushes a held view when it is due
    assert len(writes) == 2 and paced.due() is None
    # A heartbeat's view 0.2 s later waits for its second too (the SPEC's "at most once a
    # second"), and is written when it is up.
    now[0] = 101.2
    paced.offer(busy_view(time.time()))
    assert len(writes) == 2 and paced.due() == pytest.approx(102.0)
    now[0] = 102.0
    paced.flush()
    assert len(writes) == 3
    # The last view, as the service stops, is written at once.
    now[0] = 102.1
    paced.offer(busy_view(time.time()), final=True)
    assert writes == [100.0, 101.0, 102.0, 102.1]


def test_page_write_is_atomic_and_timed(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    timings: list[float] = []
    Page(layout, timed=timings.append).write(busy_view(time.time()))
    assert layout.page_path.read_text().startswith("<!doctype html>")
    assert [p.name for p in layout.outbox.iterdir()] == ["index.html"]  # no temp file left
    assert len(timings) == 1 and timings[0] > 0


@needs_chromium
def test_the_browser_harness_sees_script_errors(tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<p>x</p><script>throw new Error('boom')</script>")
    assert any("boom" in message for message in load(page).console)


@needs_chromium
def test_a_busy_queue_reads_right_in_chromium_and_goes_stale_after_60_s(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    Page(layout).write(busy_view(time.time()))
    fresh = load(layout.page_path)
    assert fresh.console == []
    for text in ("Running", "Editing now", "station-3/IMG_0042", "step 2 of 4", "Queue",
                 "next", "about 20 s", "Arriving", "waiting for its sidecar", "Failed",
                 "waiting for room in the queue · #4, starts in about 1 min",
                 "invalid_sidecar", "Remove the key", "Needs the operator", "Done"):  # fmt: skip
        assert text in fresh.dom, text
    assert 'id="stale" class="banner bad" hidden' in fresh.dom
    assert '<img src="x"' not in fresh.dom and "&lt;img src=x onerror=alert(1)&gt;" in fresh.dom
    screenshot(layout.page_path, tmp_path / "busy.png", "1280,1400")

    Page(layout).write(busy_view(time.time() - 120))
    stale = load(layout.page_path)
    assert stale.console == []
    assert "Not responding" in stale.dom
    assert 'id="stale" class="banner bad">' in stale.dom  # shown

    # Stopped cleanly two minutes ago: the badge says so, and the banner says since when.
    Page(layout).write(View(**{**busy_view(time.time() - 120).__dict__, "state": "stopped"}))
    stopped = load(layout.page_path)
    assert 'class="pill stopped">Stopped' in stopped.dom
    assert 'id="stale" class="banner bad">Not responding since' in stopped.dom


@needs_chromium
@pytest.mark.slow
def test_the_page_of_a_real_run_shows_pictures_failures_and_escaped_text(tmp_path: Path) -> None:
    """Pass: after `run --once`, Chromium shows the jobs, the reason and what to do, the
    instruction as text, thumbnails that exist (≤ 256 px), says "Stopped", logs no error."""
    write_config(tmp_path, sidecar_wait_seconds=1)
    inbox = tmp_path / "inbox"
    drop_pair(inbox, "station-1/beach", instruction="Make the sky blue")
    make_image(inbox / "station-1/big.png", size=(1000, 700), color=(30, 90, 200))
    write_sidecar(inbox / "station-1/big.yaml", instruction=XSS)
    drop_pair(inbox, "station-2/bad", colour="red")
    make_image(inbox / "station-2/alone.jpg")
    result = hotfolder("run", "--once", "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    page = tmp_path / "outbox" / "index.html"
    loaded = load(page)
    assert loaded.console == []
    for text in ("Stopped", "station-1/beach", "station-1/big", "station-2/bad",
                 "invalid_sidecar", "What to do", "no_sidecar", "Done"):  # fmt: skip
        assert text in loaded.dom, text
    assert "&lt;img src=x onerror=alert(1)&gt;" in loaded.dom
    assert '<img src="x"' not in loaded.dom
    for which in ("before", "after"):
        thumb = tmp_path / "outbox" / ".thumbs" / "station-1" / f"big.{which}.jpg"
        assert f'src=".thumbs/station-1/big.{which}.jpg"' in loaded.dom
        with Image.open(thumb) as image:
            assert image.size == (250, 175)  # 1000 x 700 reduced by 4: at most 256 px
    for name, size in (("laptop", "1280,1400"), ("phone", "390,1600")):
        shot = screenshot(page, tmp_path / f"{name}.png", size)
        keep = os.environ.get("HOTFOLDER_SCREENSHOTS")
        if keep:  # look at them: HOTFOLDER_SCREENSHOTS=/tmp/shots pytest tests/test_page.py
            shutil.copy(shot, Path(keep) / shot.name)
