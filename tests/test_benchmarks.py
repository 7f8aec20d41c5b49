"""benchmarks/run.py and benchmarks/gpu.py keep running: their cheapest parts only, no timing
asserted (that is their job)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support import REPO, cli_env


def run_script(name: str, *args: str, timeout: float) -> tuple[dict[str, Any], str]:
    """benchmarks/NAME with `args`, which must succeed: its last JSON line, and its stderr."""
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / name), *args],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def test_the_benchmark_script_prints_its_figures_as_json() -> None:
    figures, _log = run_script("run.py", "--quick", "--only", "job", timeout=120)
    assert figures["job_overhead_ratio"] > 0
    assert figures["pickup_ms_p95_native"] is None  # parts not asked for stay null
    assert "burst_peak_rss_mb" in figures
    assert figures["ray_scaling_3_workers"] is None  # and the Ray figures are there too


@pytest.mark.slow
def test_the_gpu_benchmark_runs_at_tiny_size_without_cuda() -> None:
    """benchmarks/gpu.py keeps running where there is no GPU: one set, one job, two drops."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: gpu.py would run at full size")
    report, log = run_script(
        "gpu.py", "--sets", "eager,compile+fp8", "--jobs", "1", "--service-jobs", "2", timeout=300
    )
    assert "tiny size on the CPU" in log
    assert report["size"] == "tiny"
    eager = report["sets"]["eager"]
    assert eager["median_seconds"] > 0
    assert eager["duty_cycle"]["jobs"] == 2
    assert 0 < eager["duty_cycle"]["ratio"] <= 1
    # fp8 needs a GPU of compute capability 8.9+: the set says why it did not run.
    assert "compute capability 8.9" in report["sets"]["compile+fp8"]["error"]
    # One more edit per set, split into the pipeline's parts: they add up to its wall.
    phases = eager["phases"]
    assert phases["transformer_calls"] == 4 and phases["vae_decoder_calls"] == 1
    parts = sum(phases[f"{part}_seconds"] for part in ("text_encoder", "vae_encoder"))
    parts += phases["transformer_seconds"] + phases["vae_decoder_seconds"]
    assert 0 < parts <= phases["wall_seconds"]
    assert phases["rest_seconds"] == pytest.approx(phases["wall_seconds"] - parts)


@pytest.mark.slow
def test_the_gpu_benchmark_measures_a_load_from_the_cpu() -> None:
    """`--load-peak` loads a pipeline that starts on the CPU through QwenEditor, then edits."""
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: gpu.py would run at full size")
    report, _log = run_script("gpu.py", "--load-peak", "none", timeout=300)
    assert report["sets"] == {}  # the load replaces the sets
    assert report["load_peak"]["load"]["peak_rss_gib"] > 0
    assert report["load_peak"]["edits"]["median_seconds"] > 0


def test_the_fsync_convoy_script_measures_every_switch_interval(tmp_path: Path) -> None:
    figures, _log = run_script(
        "fsync_convoy.py", "--files", "40", "--dir", str(tmp_path), timeout=60
    )
    assert set(figures) == {
        f"switch_{ms}ms_{how}" for ms in ("5", "1", "0.2") for how in ("alone", "busy")
    }
    assert all(isinstance(rate, int) and rate > 0 for rate in figures.values())
    assert list(tmp_path.iterdir()) == []  # its scratch folder is gone
