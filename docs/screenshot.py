"""Make docs/page.png: a demo root with jobs in every state, its outbox/index.html in Chromium.

    PYTHONPATH=. .venv/bin/python docs/screenshot.py [--keep DIR] [--phone docs/page-phone.png]

The identity editor returns its input unchanged, so the before/after pictures would look
alike; a small stand-in editor (it warms the colours) runs in its place. Everything else is
the real service: intake, two workers, the publisher and the page. Needs `chromium`.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import yaml
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from hotfolder.config import load_config
from hotfolder.editors.base import EditRequest, EditResult, ProgressFn
from hotfolder.service import Service
from hotfolder.table import queue_table

HERE = Path(__file__).resolve().parent
STEP_SECONDS = 6.0


class WarmEditor:
    """Stands in for the model: warmer, more saturated colours, reported step by step."""

    name = "demo"

    def load(self) -> None:
        return None

    def prepare(self, preset: object) -> None:
        return None

    def edit(self, request: EditRequest, progress: ProgressFn) -> EditResult:
        if "fail" in request.instruction:
            raise RuntimeError("demo: this edit fails on purpose")
        for step in range(1, request.steps + 1):
            time.sleep(STEP_SECONDS)
            progress(step, request.steps)
        image = ImageEnhance.Color(request.image).enhance(1.8)
        red, green, blue = image.split()
        image = Image.merge("RGB", (red.point(lambda v: min(255, v + 30)), green, blue))
        return EditResult(image=image, model="demo")


def photo(path: Path, seed: int, size: tuple[int, int] = (900, 600)) -> None:
    """A landscape-like picture: sky gradient, hills, a sun."""
    rng = random.Random(seed)
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    top = (rng.randint(30, 90), rng.randint(90, 160), rng.randint(170, 240))
    low = (rng.randint(200, 250), rng.randint(170, 220), rng.randint(120, 190))
    for y in range(height):
        t = y / height
        draw.line(
            [(0, y), (width, y)],
            fill=tuple(round(a * (1 - t) + b * t) for a, b in zip(top, low, strict=True)),
        )
    sun = rng.randint(100, width - 100)
    draw.ellipse([sun - 50, 80, sun + 50, 180], fill=(255, 236, 170))
    for _ in range(4):
        x, r = rng.randint(0, width), rng.randint(120, 260)
        shade = (rng.randint(30, 80), rng.randint(90, 140), rng.randint(40, 80))
        draw.ellipse(
            [x - r, int(height * 0.62) - r // 2, x + r, int(height * 0.62) + r], fill=shade
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    image.filter(ImageFilter.GaussianBlur(1.2)).save(path, "JPEG", quality=88)


def drop(root: Path, name: str, seed: int, **sidecar: object) -> None:
    photo(root / "stage" / f"{name}.jpg", seed)
    (root / "stage" / f"{name}.yaml").write_text(yaml.safe_dump(sidecar))
    for suffix in (".jpg", ".yaml"):
        target = root / "inbox" / f"{name}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        (root / "stage" / f"{name}{suffix}").rename(target)


def scene(root: Path, service: Service, shots: list[tuple[Path, str]]) -> None:
    """Drop the demo's files, wait for a busy moment, take the screenshots, stop."""
    try:
        drop(root, "station-1/beach", 1, instruction="Make the sky a deep sunset orange")
        drop(root, "station-1/harbour", 2, instruction="Remove the people on the pier", steps=2)
        drop(root, "station-2/portrait-014", 3, instruction="Soften the light", colour="warm")
        drop(root, "station-2/field", 4, instruction="fail: add a rainbow", steps=1)
        time.sleep(2)
        drop(root, "station-1/xss-test", 5, instruction="<img src=x onerror=alert(1)> as text")
        for index, words in enumerate(
            (
                "Brighten the faces",
                "Turn the grass greener",
                "Make it look like winter",
                "Add soft morning fog",
                "Warm up the skin tones",
                "Straighten the horizon",
            ),
            start=10,
        ):
            drop(root, f"station-3/IMG_00{index}", index, instruction=words)
        photo(root / "inbox" / "station-2" / "no-sidecar-yet.jpg", 99)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            counts = service.board.recent.counts()
            if sum(counts.values()) >= 5 and len(service.jobs.in_flight()) >= 2:
                break
            time.sleep(0.5)
        time.sleep(STEP_SECONDS + 2)
        for path, size in shots:
            chromium_screenshot(root / "outbox" / "index.html", path, size)
        print(queue_table(service.config))  # `hotfolder status` at the same moment
    finally:
        # Stop as an operator would: SIGTERM, then again (jobs in flight go back to the queue).
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)


def chromium_screenshot(page: Path, out: Path, size: str) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                shutil.which("chromium") or "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                f"--window-size={size}",
                f"--screenshot={out}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    print(f"wrote {out} ({size})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build the demo root here and keep it")
    parser.add_argument("--laptop", type=Path, default=HERE / "page.png")
    parser.add_argument("--phone", type=Path, help="also a phone-size screenshot here")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="hotfolder-demo-"))
    (root / "config").mkdir(parents=True, exist_ok=True)
    (root / "config" / "hotfolder.yaml").write_text(
        yaml.safe_dump(
            {
                "settle_seconds": 0.3,
                "sidecar_wait_seconds": 3600,
                "observer": "native",
                "editor": {"name": "identity", "device": ["cpu", "cpu"]},
            }
        )
    )
    for folder in ("inbox", "outbox", "failed", "stage"):
        (root / folder).mkdir(exist_ok=True)
    config = load_config(root=root)
    service = Service(config, editor=WarmEditor())
    shots = [(args.laptop.resolve(), "1280,1500")]
    if args.phone:
        shots.append((args.phone.resolve(), "390,1900"))
    helper = threading.Thread(target=scene, args=(root, service, shots))
    helper.start()
    service.run()
    helper.join()
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
