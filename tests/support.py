"""Helpers for tests that drive the real service on real folders."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def make_image(path: Path, size: tuple[int, int] = (64, 48), color: Any = (200, 40, 40)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        path.suffix.lower(), path.suffix.lstrip(".").upper()
    )
    Image.new("RGB", size, color).save(path, format=fmt)
    return path


def write_sidecar(path: Path, **keys: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    keys.setdefault("instruction", "Make the sky blue")
    path.write_text(yaml.safe_dump(keys))
    return path


def drop_pair(inbox: Path, name: str, *, image_first: bool = True, **keys: Any) -> Path:
    """Drop NAME.jpg and NAME.yaml; return the image path."""
    image = inbox / f"{name}.jpg"
    side = inbox / f"{name}.yaml"
    if image_first:
        make_image(image)
        write_sidecar(side, **keys)
    else:
        write_sidecar(side, **keys)
        make_image(image)
    return image


def write_config(root: Path, **overrides: Any) -> Path:
    """A config for fast tests: identity editor, short settle and waits."""
    data: dict[str, Any] = {
        "settle_seconds": 0.2,
        "sidecar_wait_seconds": 3,
        "poll_interval_seconds": 0.1,
        "observer": "native",
        "editor": {"name": "identity"},
        "default_preset": "qwen-4step",
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    path = root / "config" / "hotfolder.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    for folder in ("inbox", "outbox", "failed", ".hotfolder"):
        (root / folder).mkdir(exist_ok=True)
    return path


def wait_for(
    predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll until `predicate()` is truthy; fail with `what` after a generous deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what or predicate}")
        time.sleep(interval)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_bytes())
        return data
    except (OSError, ValueError):
        return None


def status_of(root: Path, name: str) -> dict[str, Any] | None:
    return read_json(root / "outbox" / f"{name}.status.json")


def has_status(root: Path, name: str, *states: str) -> dict[str, Any] | None:
    data = status_of(root, name)
    if data is not None and data.get("status") in states:
        return data
    return None


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def hotfolder(
    *args: str, cwd: Path | None = None, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a subprocess (`env` adds variables, e.g. fault hooks)."""
    return subprocess.run(
        [sys.executable, "-m", "hotfolder", *args],
        cwd=cwd,
        env={**cli_env(), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServiceProcess:
    """`hotfolder run` as a subprocess, its log kept in a file for failing tests to show."""

    def __init__(self, root: Path, *extra: str) -> None:
        self.root = root
        self.log_path = root / "service.log"
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hotfolder", "run", "--root", str(root), *extra],
            cwd=root,
            env=cli_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        """Until queue.json exists with this process's pid and the editor loaded."""

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"service exited early ({self.proc.returncode}):\n{self.log()}"
                )
            data = read_json(self.root / "outbox" / "queue.json")
            return bool(
                data and data.get("pid") == self.proc.pid and "editor" not in data.get("notes", {})
            )

        wait_for(ready, timeout, what="the service to start")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)
        self._log.close()

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            # Show what it was doing: a hung stop is otherwise only a timeout.
            raise AssertionError(
                f"the service did not exit within {timeout:g} s:\n{self.log()}"
            ) from None
        finally:
            self._log.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait()

    def __enter__(self) -> ServiceProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        if not self._log.closed:
            self._log.close()


def files_under(folder: Path) -> list[str]:
    """Relative paths of plain files under `folder`, ignoring .gitkeep."""
    if not folder.exists():
        return []
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name != ".gitkeep"
    )


def jobs_on(layout: Any, config: Any, clock: Callable[[], float] | None = None) -> Any:
    """The service's owner of job state (Jobs) on real folders, without the service."""
    from hotfolder.jobs import Jobs
    from hotfolder.spool import Spool
    from hotfolder.state import ServiceState
    from hotfolder.status import Board

    state = ServiceState()
    board = Board(layout, config, state=state, **({"clock": clock} if clock else {}))
    return Jobs(layout, config, Spool(layout), board, state)


def record_fsyncs(monkeypatch: Any) -> list[str]:
    """From now on, the path of every file or folder fsynced (in order), each still fsynced."""
    synced: list[str] = []
    real_fsync = os.fsync

    def recording(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    return synced
