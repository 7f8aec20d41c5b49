"""Headless Chromium for the page tests: the rendered DOM, console messages, screenshots.

Chromium is the Debian package `chromium` (`.ci/run` installs it where it can); tests that
need it skip without it. Nothing is fetched: the flags turn off every background request.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)"
)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
# `[pid:tid:date:INFO:CONSOLE:12] "message", source: file:///… (12)`
CONSOLE = re.compile(r':CONSOLE(?:\(\d+\)|:\d+)\] "(.*)", source: ')


@dataclass
class Loaded:
    dom: str
    console: list[str]


def _run(url: str, *extra: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="hotfolder-chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def load(page: Path) -> Loaded:
    """The DOM after the page's script ran, and every console message it logged."""
    result = _run(page.as_uri(), "--enable-logging=stderr", "--v=0", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    return Loaded(dom=result.stdout, console=CONSOLE.findall(result.stderr))


def screenshot(page: Path, out: Path, size: str) -> Path:
    """`size`: "WIDTH,HEIGHT" of the window, e.g. "1280,1400" (laptop) or "390,1600" (phone)."""
    result = _run(
        page.as_uri(), "--hide-scrollbars", f"--window-size={size}", f"--screenshot={out}"
    )
    assert result.returncode == 0 and out.exists(), result.stderr[-2000:]
    return out
