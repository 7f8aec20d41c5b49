"""Operator controls as files under `.hotfolder/`, so they work from any machine on the share.

`hotfolder cancel|retry NAME` writes a request file; the running service carries
it out on its next tick and writes a result file beside it. With no service
running, the command takes the root's lock and does the work itself.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hotfolder import fsops
from hotfolder.layout import Layout, new_job_id

log = logging.getLogger(__name__)

RESULT_SUFFIX = ".result.json"
# Results nobody collected are removed after this long.
RESULT_TTL_SECONDS = 3600.0

# Takes the whole request (`action`, `name`, and e.g. retry's `selection`).
Handler = Callable[[dict[str, Any]], tuple[bool, str]]


def requests_dir(layout: Layout) -> Path:
    return layout.private / "requests"


def make_request(action: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"action": action, "name": name, "requested_at": time.time(), **extra}


def submit(layout: Layout, request: dict[str, Any]) -> str:
    request_id = new_job_id()
    fsops.write_json_atomic(requests_dir(layout) / f"{request_id}.json", request)
    return request_id


def wait_result(layout: Layout, request_id: str, timeout_seconds: float) -> dict[str, Any] | None:
    path = requests_dir(layout) / f"{request_id}{RESULT_SUFFIX}"
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        try:
            data: dict[str, Any] = json.loads(path.read_bytes())
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        fsops.remove(path)
        return data
    return None


class ControlDesk:
    """The service's side: carry out request files in the order they were written."""

    def __init__(self, layout: Layout, handlers: dict[str, Handler]) -> None:
        self.layout = layout
        self.handlers = handlers

    def poll(self) -> None:
        folder = requests_dir(self.layout)
        try:
            names = sorted(
                n
                for n in folder.iterdir()
                if n.name.endswith(".json")
                and not n.name.endswith(RESULT_SUFFIX)
                and not fsops.is_temp_name(n.name)
            )
        except FileNotFoundError:
            return
        for path in names:
            self._handle(path)
        self._expire(folder)

    def _handle(self, path: Path) -> None:
        try:
            request = json.loads(path.read_bytes())
            action, name = str(request["action"]), str(request["name"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            result = {"ok": False, "message": f"unreadable request {path.name}: {e}"}
        else:
            handler = self.handlers.get(action)
            if handler is None:
                result = {"ok": False, "message": f"unknown action {action!r}"}
            else:
                try:
                    ok, message = handler(request)
                except Exception as e:
                    log.exception("control %s %s failed", action, name)
                    ok, message = False, f"{action} {name} failed: {e}"
                result = {"ok": ok, "message": message, "action": action, "name": name}
                log.info("control: %s %s: %s", action, name, message)
        fsops.write_json_atomic(path.with_name(path.name[: -len(".json")] + RESULT_SUFFIX), result)
        fsops.remove(path)

    def _expire(self, folder: Path) -> None:
        cutoff = time.time() - RESULT_TTL_SECONDS
        for path in folder.glob(f"*{RESULT_SUFFIX}"):
            try:
                if path.stat().st_mtime < cutoff:
                    fsops.remove(path)
            except OSError:
                continue
