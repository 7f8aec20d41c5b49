"""`outbox/index.html`: one self-contained page a photographer opens from the share.

Inline CSS and script, nothing fetched; thumbnails and results by relative link. It reloads
itself every 5 s, and its script says "not responding since …" once the heartbeat it
carries is older than 60 s. Every text that comes from a drop is HTML-escaped here, in one
place (`esc`); links are percent-encoded, then escaped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import quote

from hotfolder import __version__, fsops, wording
from hotfolder.jobstatus import JobStatus, iso, parse_iso
from hotfolder.layout import Layout
from hotfolder.recent import Finished
from hotfolder.spool import JobState
from hotfolder.view import View

RELOAD_SECONDS = 5
STALE_SECONDS = 60
# Queued jobs listed by name; the rest are counted (a long queue stays a short page).
QUEUE_ROWS = 100

STATE_WORDS = {
    "starting": ("Starting", "Getting ready: loading the model. Jobs start soon."),
    "running": ("Running", "Taking new drops and editing them in order."),
    "paused": ("Paused", "Drops are still queued, but no new edit starts until it is resumed."),
    "stopping": ("Stopping", "Finishing the jobs in flight; nothing new starts."),
    "stopped": ("Stopped", "Nothing is edited until the service runs again; drops wait in inbox/."),
}


def esc(value: object) -> str:
    return escape(str(value), quote=True)


def link(path: str) -> str:
    """A relative link from outbox/ (percent-encoded, then escaped for the attribute)."""
    return esc(quote(path))


def _iso(moment: float) -> str:
    return iso(moment) or ""


def stamp(iso_text: str | None, *, relative: bool = False) -> str:
    """A <time> the script shows in the reader's local time (UTC until it runs)."""
    moment = parse_iso(iso_text)
    if moment is None:
        return ""
    text = time.strftime("%H:%M UTC", time.gmtime(moment))
    kind = ' data-rel="1"' if relative else ""
    return f'<time datetime="{esc(iso_text)}"{kind}>{text}</time>'


def _state(view: View) -> str:
    title, words = STATE_WORDS.get(view.state, (view.state.title(), ""))
    look = view.state
    if view.state == "running" and not view.accepting:
        # SPEC: the page shows "not accepting" (the disk is nearly full, say): drops wait in
        # inbox/ until it takes them again; the queue goes on.
        title, look = "Not accepting", "refusing"
        words = "Not taking new drops right now (they wait in inbox/); the queue goes on."
    since = f"Since {stamp(_iso(view.at))}. " if view.state == "stopped" else ""
    busy = len(view.running)
    parts = [
        wording.plural(busy, "editing", "editing"),
        wording.plural(len(view.queued), "queued", "queued"),
    ]
    if view.waiting:
        parts.append(wording.plural(len(view.waiting), "arriving", "arriving"))
    parts.append(wording.plural(view.counts.get(JobState.completed, 0), "done", "done"))
    failed = view.counts.get(JobState.failed, 0)
    if failed:
        parts.append(f'<span class="bad">{wording.plural(failed, "failed", "failed")}</span>')
    return (
        f'<div class="state"><span id="pill" class="pill {esc(look)}">{esc(title)}</span>'
        f'<span id="words">{since}{esc(words)}</span></div>'
        f'<p id="stale" class="banner bad" hidden>Not responding since '
        f"{stamp(_iso(view.at))}. What you see below may be out of date: tell the operator.</p>"
        f'<p class="summary">{" · ".join(parts)}</p>'
    )


def _notes(view: View) -> str:
    # "loading model" is the state line's news (Starting), not a problem for the operator.
    items = [esc(text) for source, text in view.notes.items() if source != "editor"]
    if not view.accepting and not view.notes:
        items.append("Not taking new drops right now.")
    if not items:
        return ""
    rows = "".join(f"<li>{text}</li>" for text in items)
    return f'<section class="notes"><h2>Needs the operator</h2><ul>{rows}</ul></section>'


def _bar(progress: Any) -> str:
    if progress is None:
        return '<div class="bar"><span style="width:0%"></span></div><p class="muted">starting…</p>'
    step, steps = int(progress["step"]), max(1, int(progress["steps"]))
    share = min(100, round(100 * step / steps))
    return (
        f'<div class="bar" role="progressbar" aria-valuenow="{share}" aria-valuemin="0" '
        f'aria-valuemax="100"><span style="width:{share}%"></span></div>'
        f'<p class="muted">step {step} of {steps} · {share}%</p>'
    )


def _worker(row: dict[str, Any], jobs: dict[str, JobStatus]) -> str:
    head = (
        f'<h3>{esc(row.get("worker"))}<span class="muted"> · {esc(row.get("device"))}</span></h3>'
    )
    busy = f'<p class="muted small">busy {round(100 * float(row.get("busy_ratio") or 0))}% of the last 10 min</p>'
    status = jobs.get(str(row.get("job_id")))
    if status is None:
        state = str(row.get("state") or "ready")
        words = "Ready, nothing to do." if state == "ready" else f"Not available: {state}"
        kind = "" if state == "ready" else " bad"
        return f'<article class="card worker">{head}<p class="idle{kind}">{esc(words)}</p>{busy}</article>'
    progress = row.get("progress")
    return (
        f'<article class="card worker busy">{head}<p class="job">{esc(status.name)}</p>'
        f'<p class="instruction">{esc(status.instruction or "")}</p>'
        f'{_bar(progress)}<p class="muted small">started {stamp(status.started_at)}</p>{busy}</article>'
    )


def _now(view: View) -> str:
    if view.state == "stopped":
        return ""  # no worker runs; the state line says so
    jobs = {s.job_id: s for s in view.running}
    cards = [_worker(row, jobs) for row in view.workers]
    shown = {str(row.get("job_id")) for row in view.workers}
    for status in view.running:
        if status.job_id not in shown:
            cards.append(
                f'<article class="card worker busy"><h3>Saving the result</h3>'
                f'<p class="job">{esc(status.name)}</p>'
                f'<p class="instruction">{esc(status.instruction or "")}</p></article>'
            )
    if not cards:
        return ""
    return f'<section><h2>Editing now</h2><div class="cards">{"".join(cards)}</div></section>'


def _queue(view: View) -> str:
    if not view.queued:
        return '<section><h2>Queue</h2><p class="muted">Nothing waiting. Drop an image and its sidecar into inbox/.</p></section>'
    starts = view.state in ("starting", "running")
    rows = []
    for status in view.queued[:QUEUE_ROWS]:
        when = wording.wait(status.estimated_wait_seconds, status.position, starts_jobs=starts)
        rows.append(
            f'<li><span class="pos">{esc(status.position)}</span>'
            f'<span class="name">{esc(status.name)}</span>'
            f'<span class="instruction">{esc(status.instruction or "")}</span>'
            f'<span class="when">{esc(when)}</span></li>'
        )
    more = len(view.queued) - QUEUE_ROWS
    tail = f'<p class="muted">… and {more} more.</p>' if more > 0 else ""
    hold = "" if starts else '<p class="muted">On hold: no edit starts until the service runs.</p>'
    return (
        f'<section><h2>Queue <span class="count">{len(view.queued)}</span></h2>{hold}'
        f'<ol class="queue"><li class="head"><span class="pos">#</span><span class="name">Job</span>'
        f'<span class="instruction">Instruction</span><span class="when">Starts in</span></li>'
        f"{''.join(rows)}</ol>{tail}</section>"
    )


def _waiting(view: View) -> str:
    """Drops seen and not admitted yet; those held for room first, with the place they will
    take in the queue and when they should start, as queued jobs show theirs."""
    if not view.waiting:
        return ""
    starts = view.state in ("starting", "running")
    ordered = sorted(view.waiting, key=lambda s: (s.position is None, s.position or 0, s.name))
    rows = []
    for s in ordered[:QUEUE_ROWS]:
        place = ""
        if s.position is not None:
            when = wording.wait(s.estimated_wait_seconds, s.position, starts_jobs=starts)
            place = f" · #{s.position}, starts in {when}"
            if when in ("next", "now", "on hold"):
                place = f" · #{s.position}, {when}"
        rows.append(
            f'<li><span class="name">{esc(s.name)}</span>'
            f'<span class="muted">{esc((s.detail or "") + place)}</span></li>'
        )
    return f'<section><h2>Arriving <span class="count">{len(view.waiting)}</span></h2><ul class="plain">{"".join(rows)}</ul></section>'


def _thumb(finished: Finished, which: str) -> str:
    have = finished.thumbs[0 if which == "before" else 1]
    if not have:
        return f'<span class="thumb none">{"no picture" if which == "before" else "—"}</span>'
    src = link(f".thumbs/{finished.status.name}.{which}.jpg")
    picture = f'<img class="thumb" src="{src}" alt="{which}" loading="lazy">'
    result = finished.status.result_path
    if which == "after" and result:
        return f'<a href="{link(result.removeprefix("outbox/"))}">{picture}</a>'
    return picture


def _failure(finished: Finished) -> str:
    status = finished.status
    fix, more = wording.advice(status.error_code, finished.details)
    folded = f"<details><summary>Details</summary><pre>{esc(more)}</pre></details>" if more else ""
    picture = f'<div class="pics">{_thumb(finished, "before")}</div>' if finished.thumbs[0] else ""
    return (
        f'<article class="card failure">{picture}'
        f'<div class="text"><h3>{esc(status.name)} <span class="code">{esc(status.error_code or "failed")}</span></h3>'
        f'<p>{esc(status.error or "")}</p><p class="fix"><b>What to do:</b> {esc(fix)}</p>{folded}'
        f'<p class="muted small">{stamp(status.completed_at)} · files in failed/{esc(status.name)}.*</p></div></article>'
    )


def _failures(view: View) -> str:
    if not view.failures:
        return ""
    cards = "".join(_failure(f) for f in view.failures)
    return f'<section><h2>Failed <span class="count bad">{len(view.failures)}</span></h2><div class="cards wide">{cards}</div></section>'


def _done_card(finished: Finished) -> str:
    status = finished.status
    ran = status.status == JobState.completed and finished.seconds is not None
    took = f" · took {wording.seconds(finished.seconds or 0)}" if ran else ""
    badge = (
        ""
        if status.status == JobState.completed
        else f'<span class="code">{esc(status.status.value)}</span>'
    )
    return (
        f'<article class="card done"><div class="pics">{_thumb(finished, "before")}'
        f'<span class="arrow">→</span>{_thumb(finished, "after")}</div>'
        f'<h3>{esc(status.name)} {badge}</h3><p class="instruction">{esc(status.instruction or "")}</p>'
        f'<p class="muted small">{stamp(status.completed_at)}{took}</p></article>'
    )


def _done(view: View) -> str:
    if not view.recent:
        return ""
    cards = "".join(_done_card(f) for f in view.recent)
    return (
        f'<section><h2>Done</h2><p class="muted small">Newest first; click a picture for the '
        f'result (in outbox/).</p><div class="cards grid">{cards}</div></section>'
    )


def render(view: View, *, root: str = "") -> str:
    """The whole page for one view."""
    title = (
        f"hotfolder · {STATE_WORDS.get(view.state, (view.state,))[0]} · {len(view.queued)} queued"
    )
    body = "".join(
        (
            _state(view),
            _notes(view),
            _now(view),
            _queue(view),
            _waiting(view),
            _failures(view),
            _done(view),
        )
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{RELOAD_SECONDS}"><title>{esc(title)}</title>'
        f"<style>{CSS}</style></head>"
        f'<body data-heartbeat="{esc(_iso(view.at))}" data-state="{esc(view.state)}" data-stale-seconds="{STALE_SECONDS}">'
        f'<header><h1>hotfolder</h1><span class="muted">{esc(root)}</span>'
        f'<span class="updated muted small">updated {stamp(_iso(view.at), relative=True)}</span></header>'
        f"<main>{body}</main>"
        f'<footer class="muted small">hotfolder {esc(__version__)} · this page reloads every {RELOAD_SECONDS} s · '
        f"times are your computer's · observer {esc(view.observer)}</footer>"
        f"<script>{SCRIPT}</script></body></html>"
    )


class Page:
    """Writes outbox/index.html (a publisher renderer); `timed` learns each write's seconds."""

    name = "page"

    def __init__(
        self,
        layout: Layout,
        *,
        timed: Callable[[float], None] = lambda seconds: None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.layout = layout
        self.timed = timed
        self.clock = clock

    def write(self, view: View) -> None:
        started = self.clock()
        text = render(view, root=self.layout.root.name or str(self.layout.root))
        fsops.write_atomic(self.layout.page_path, text.encode())
        self.timed(self.clock() - started)


CSS = """
:root{--bg:#f6f7f9;--card:#fff;--ink:#1d2330;--muted:#667085;--line:#e3e6eb;--ok:#1f9d55;
--warn:#b7791f;--bad:#c53030;--accent:#2f6fed;font-family:system-ui,-apple-system,"Segoe UI",
Roboto,sans-serif;color:var(--ink);background:var(--bg)}
@media (prefers-color-scheme:dark){:root{--bg:#15181e;--card:#1e232b;--ink:#e8eaee;
--muted:#9aa3b2;--line:#2c333d}}
*{box-sizing:border-box}body{margin:0 auto;max-width:1100px;padding:16px}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:4px 12px}
h1{font-size:1.3rem;margin:0}h2{font-size:1.05rem;margin:24px 0 8px}
h3{font-size:.95rem;margin:0 0 4px;overflow-wrap:anywhere}p{margin:4px 0}
.updated{margin-left:auto}.muted{color:var(--muted)}.small{font-size:.8rem}.bad{color:var(--bad)}
.state{display:flex;flex-wrap:wrap;align-items:center;gap:8px 12px;margin-top:12px}
.pill{font-weight:700;padding:4px 12px;border-radius:999px;color:#fff;background:var(--muted)}
.pill.running{background:var(--ok)}.pill.paused,.pill.stopping,.pill.refusing{background:var(--warn)}
.pill.starting{background:var(--accent)}.pill.stale{background:var(--bad)}
.summary{font-size:1.05rem;margin-top:8px}
.banner{padding:10px 12px;border-radius:8px;background:#fdecec;border:1px solid var(--bad)}
.notes ul{margin:0;padding:10px 12px 10px 28px;border-radius:8px;background:#fff7e0;
border:1px solid var(--warn);color:#5c4300}
.cards{display:grid;gap:12px;grid-template-columns:repeat(auto-fill,minmax(260px,1fr))}
.cards.wide{grid-template-columns:1fr}.cards.grid{grid-template-columns:repeat(auto-fill,minmax(220px,1fr))}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px;min-width:0}
.failure{display:flex;gap:12px;border-left:4px solid var(--bad)}
.worker.busy{border-left:4px solid var(--accent)}.job{font-weight:600;overflow-wrap:anywhere}
.instruction{overflow-wrap:anywhere}.done .instruction{display:-webkit-box;-webkit-line-clamp:2;
-webkit-box-orient:vertical;overflow:hidden;color:var(--muted);font-size:.85rem}
.bar{height:10px;border-radius:5px;background:var(--line);overflow:hidden;margin-top:8px}
.bar span{display:block;height:100%;background:var(--accent)}
.queue,.plain{list-style:none;margin:0;padding:0;background:var(--card);border:1px solid var(--line);
border-radius:10px}
.queue li,.plain li{display:grid;grid-template-columns:3rem minmax(8rem,1fr) 2fr 8rem;gap:8px;
padding:8px 12px;border-top:1px solid var(--line)}
.plain li{grid-template-columns:1fr 1fr}.queue li:first-child,.plain li:first-child{border-top:0}
.queue .head{font-size:.8rem;color:var(--muted)}.pos{color:var(--muted)}.when{text-align:right}
.name{font-weight:600;overflow-wrap:anywhere}.count{font-weight:400;color:var(--muted)}
.pics{display:flex;align-items:center;gap:6px;margin-bottom:8px}.arrow{color:var(--muted)}
.thumb{display:flex;width:96px;height:96px;object-fit:cover;border-radius:6px;background:var(--line)}
.thumb.none{align-items:center;justify-content:center;font-size:.7rem;color:var(--muted)}
.done .pics{display:grid;grid-template-columns:1fr auto 1fr}.done .pics a{display:block}
.done .pics .thumb{width:100%;height:auto;aspect-ratio:1}
.failure .text{min-width:0}details{margin-top:6px}summary{cursor:pointer;color:var(--muted)}
pre{white-space:pre-wrap;overflow-wrap:anywhere;font-size:.75rem;max-height:16em;overflow:auto}
.code{font-size:.75rem;font-weight:600;padding:1px 6px;border-radius:4px;background:#fdecec;
color:var(--bad);white-space:nowrap}.fix{margin-top:6px}
footer{margin:32px 0 8px}
@media (max-width:640px){body{padding:10px}.updated{margin-left:0;width:100%}
.queue li{grid-template-columns:2rem 1fr auto}.queue .instruction{grid-column:2/4;
color:var(--muted);font-size:.85rem}.queue .head .instruction{display:none}
.queue .when{grid-row:1;grid-column:3}.failure .thumb{width:64px;height:64px}
.plain li{grid-template-columns:1fr}
.cards.grid{grid-template-columns:1fr 1fr}.thumb{width:72px;height:72px}}
"""

SCRIPT = """
(function () {
  var body = document.body;
  var beat = Date.parse(body.getAttribute('data-heartbeat'));
  var limit = 1000 * Number(body.getAttribute('data-stale-seconds'));
  var now = Date.now();
  function clock(d) {
    var same = d.toDateString() === new Date(now).toDateString();
    var t = d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
    return same ? t : d.toLocaleDateString([], {month: 'short', day: 'numeric'}) + ' ' + t;
  }
  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 2) return 'just now';
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return clock(new Date(now - ms));
  }
  var times = document.querySelectorAll('time[datetime]');
  for (var i = 0; i < times.length; i++) {
    var when = new Date(Date.parse(times[i].getAttribute('datetime')));
    if (isNaN(when.getTime())) continue;
    times[i].textContent = times[i].hasAttribute('data-rel') ? ago(now - when) : clock(when);
    times[i].title = when.toString();
  }
  if (now - beat > limit) {
    // SPEC: "not responding since …" once the heartbeat is over 60 s old. A service that
    // stopped cleanly keeps its "Stopped" badge; the banner still says since when.
    document.getElementById('stale').hidden = false;
  }
  if (body.getAttribute('data-state') !== 'stopped' && now - beat > limit) {
    var pill = document.getElementById('pill');
    pill.textContent = 'Not responding';
    pill.className = 'pill stale';
    document.getElementById('words').textContent = 'The service has not updated this page for ' + ago(now - beat).replace(' ago', '') + '.';
    document.title = 'hotfolder · not responding';
  }
})();
"""
