"""Shared fixtures. Tests never touch a model hub."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        help="run the reliability suite at full size (500+ pairs, 50 kills) instead of CI size",
    )


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--soak"))


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Every thread a test starts is stopped by the end of that test."""
    before = set(threading.enumerate())
    yield
    deadline_threads = [
        t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon
    ]
    for thread in deadline_threads:
        thread.join(timeout=5)
    leaked = [t.name for t in deadline_threads if t.is_alive()]
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture(scope="session")
def tiny_qwen_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen-Image-Edit-2509 pipeline folder, built once per session (seconds, CPU)."""
    pytest.importorskip("diffusers")
    from hotfolder.editors.tiny import build_tiny_pipeline

    return build_tiny_pipeline(tmp_path_factory.mktemp("tiny-qwen"))


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One real Ray cluster on 127.0.0.1 for the whole session (skips without Ray).

    Started only when a test asks for it; its actors run this checkout's code with the
    identity editor's fault hooks on; stopped by its own pids, even when tests fail."""
    pytest.importorskip("ray")
    from raycluster import LocalCluster

    # The service's Ray bridge reads this too: no token, whatever ~/.ray holds.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    temp = short_temp_dir()
    cluster = LocalCluster(temp, num_cpus=8, env={"HOTFOLDER_FAULTS": "1"})
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(temp, ignore_errors=True)


def short_temp_dir() -> Path:
    """A folder for a Ray cluster's files right under the system's temp folder: Ray's
    AF_UNIX sockets live in it and their paths must stay under 107 bytes, which pytest's
    own folders (deeper still under pytest-xdist's workers) can pass."""
    return Path(tempfile.mkdtemp(prefix="hfray-"))


@pytest.fixture
def ray_temp() -> Iterator[Path]:
    temp = short_temp_dir()
    yield temp
    shutil.rmtree(temp, ignore_errors=True)
