"""kill -9 soak: many pairs, SIGKILLs at random moments, a restart after each."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from PIL import Image
from support import ServiceProcess, files_under, read_json, wait_for, write_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    ("devices", "delay"),
    [(["cpu"], 0.02), (["cpu", "cpu", "cpu"], 0.1)],
    ids=["one-slot", "three-slots"],
)
def test_kill_9_at_random_moments_loses_and_duplicates_nothing(
    tmp_path: Path, soak: bool, devices: list[str], delay: float
) -> None:
    """Pass: after N pairs and K SIGKILLs at random moments (admission, edit, result and
    status writes), every dropped file is in exactly one of archive/ or failed/, none is
    lost, no job has more than one result, every status file parses, and inbox/,
    pending/ and processing/ are empty at the end. With three slots (`device: [cpu, cpu,
    cpu]`, a longer edit so that kills find several jobs in flight) the same holds."""
    pairs, kills = (500, 50) if soak else (100, 8)
    rng = random.Random(20261129)
    write_config(
        tmp_path,
        max_pending=pairs,
        max_attempts=10,
        settle_seconds=0.1,
        editor={"name": "identity", "delay_seconds": delay, "device": devices},
    )
    inbox = tmp_path / "inbox"
    names = [f"p{i:04d}" for i in range(pairs)]
    staging = tmp_path / "staging"
    staging.mkdir()
    tiny = staging / "tiny.png"
    Image.new("RGB", (32, 24), (1, 2, 3)).save(tiny)
    data = tiny.read_bytes()
    # Pairs arrive in waves while the service is being killed.
    chunk = -(-pairs // (kills + 1))
    waves = [names[i : i + chunk] for i in range(0, pairs, chunk)]
    for wave_index in range(kills + 1):
        with ServiceProcess(tmp_path) as service:
            if wave_index < len(waves):
                for name in waves[wave_index]:
                    (inbox / f"{name}.yaml").write_text(f"instruction: edit {name}\nseed: 1\n")
                    (staging / f"{name}.png").write_bytes(data)
                    (staging / f"{name}.png").rename(inbox / f"{name}.png")
            if wave_index < kills:
                time.sleep(rng.uniform(0.3, 1.5))
                service.kill()
            else:
                service.wait_ready()
                wait_for(
                    lambda: (
                        not files_under(inbox)
                        and not files_under(tmp_path / "pending")
                        and not files_under(tmp_path / "processing")
                    ),
                    timeout=300,
                    what="the queue to drain",
                )
                assert service.stop() == 0

    archived = files_under(tmp_path / "archive")
    failed = files_under(tmp_path / "failed")
    for name in names:
        places = [p for p in (*archived, *failed) if p == f"{name}.png" or p.startswith(f"{name}~")]
        image_places = [p for p in places if p.endswith(".png")]
        assert len(image_places) == 1, f"{name}: {places}"
        sidecars = [p for p in (*archived, *failed) if p.startswith(name) and p.endswith(".yaml")]
        assert len(sidecars) == 1, f"{name}: sidecars {sidecars}"
    results = [p for p in files_under(tmp_path / "outbox") if p.endswith(".png")]
    assert len(results) == len(set(results))
    assert len(results) == len([p for p in archived if p.endswith(".png")])
    for path in (tmp_path / "outbox").rglob("*.json"):
        assert read_json(path) is not None, f"{path} does not parse"
    for folder in ("inbox", "pending", "processing"):
        assert files_under(tmp_path / folder) == [], folder
    temps = [p for p in tmp_path.rglob(".hf-*")]
    assert temps == []
