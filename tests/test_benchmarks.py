"""benchmarks/run.py keeps running: its cheapest part only, no timing asserted (that is its job)."""

from __future__ import annotations

import json
import subprocess
import sys

from support import REPO, cli_env


def test_the_benchmark_script_prints_its_figures_as_json() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--only", "job"],
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["job_overhead_ratio"] > 0
    assert figures["pickup_ms_p95_native"] is None  # parts not asked for stay null
    assert "burst_peak_rss_mb" in figures
    assert figures["ray_scaling_3_workers"] is None  # and the Ray figures are there too
