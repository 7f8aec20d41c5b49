"""A real Ray cluster on 127.0.0.1 for tests and benchmarks, stopped by the pids it started.

`ray start --head --node-ip-address 127.0.0.1 --port P --num-cpus N --disable-usage-stats`,
its temporary files under a folder the caller gives, every port but the head's chosen free
(so it never meets another cluster on this machine). `stop()` kills exactly the processes
of this cluster (found by its temp folder or its address, and their children), never
`ray stop`, which would end every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ray_env(*, loopback: bool, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    env.update(
        {
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            # Ray turns 127.0.0.1 into the machine's outward address unless this is 0 (the
            # head); a second node needs 1 to join, and raynode.py to keep 127.0.0.1.
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0" if loopback else "1",
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "disabled",  # whatever ~/.ray holds; the drivers say the same
            "RAY_enable_worker_prestart": "0",  # workers start when an actor needs one
            "HF_HUB_OFFLINE": "1",
        }
    )
    env.update(extra or {})
    return env


def node_ports() -> list[str]:
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


class LocalCluster:
    def __init__(
        self,
        temp_dir: Path,
        *,
        num_cpus: int = 4,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.temp_dir = temp_dir
        self.num_cpus = num_cpus
        self.env = env or {}
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log = temp_dir / "ray-start.log"
        temp_dir.mkdir(parents=True, exist_ok=True)

    def _ray(self, args: list[str], env: dict[str, str], *, via: list[str] | None = None) -> None:
        with self.log.open("ab") as log:
            done = subprocess.run(
                [*(via or [str(RAY)]), *args],
                check=False,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=180,
            )
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"ray {args[0]} failed ({done.returncode}):\n{tail}")

    def start(self) -> LocalCluster:
        self._ray(
            [
                "start",
                "--head",
                "--node-ip-address=127.0.0.1",
                f"--port={self.port}",
                f"--num-cpus={self.num_cpus}",
                "--num-gpus=0",
                "--disable-usage-stats",
                "--include-dashboard=false",
                f"--ray-client-server-port={free_port()}",
                f"--temp-dir={self.temp_dir}",
                *node_ports(),
            ],
            ray_env(loopback=True, extra=self.env),
        )
        return self

    def add_node(self, *, num_cpus: int, env: dict[str, str] | None = None) -> None:
        """A second node on this machine (its own raylet), joined to the head."""
        self._ray(
            [
                "start",
                f"--address={self.address}",
                "--node-ip-address=127.0.0.1",
                f"--num-cpus={num_cpus}",
                "--num-gpus=0",
                "--disable-usage-stats",
                *node_ports(),
            ],
            ray_env(loopback=False, extra={**self.env, **(env or {})}),
            via=[sys.executable, str(Path(__file__).with_name("raynode.py"))],
        )

    def processes(self) -> list[psutil.Process]:
        marks = (str(self.temp_dir), self.address)
        found: dict[int, psutil.Process] = {}
        for proc in psutil.process_iter(["cmdline"]):
            if proc.pid == os.getpid():
                continue
            cmdline = proc.info["cmdline"] or []
            if any(mark in part for part in cmdline for mark in marks):
                found[proc.pid] = proc
                with contextlib.suppress(psutil.Error):
                    found.update((child.pid, child) for child in proc.children(recursive=True))
        return list(found.values())

    def stop(self) -> None:
        """Kill every process of this cluster (as `ray stop --force` would, but only ours)."""
        for _ in range(3):
            procs = self.processes()
            if not procs:
                return
            for proc in procs:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            psutil.wait_procs(procs, timeout=10)
            time.sleep(0.2)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
