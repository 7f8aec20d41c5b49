"""The Ray driver: `python -m hotfolder.slots.raybridge FD PARENT_PID`, started by the
service's `RayExecutor` (slots.ray); the only process of the service that imports Ray.

It joins the cluster (or starts a private Ray), keeps one actor per Ray slot (a `Keeper`
each), and relays between the service's socket and the actors: tickets and controls in,
the engines' events out. It lives apart from the service because a Ray driver whose
cluster goes away ends its own process; the service must not. When the cluster stops
answering, the bridge says so and exits; the service waits for the cluster and starts a
new bridge. It never outlives the service (parent-death signal, end of its socket).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import math
import os
import socket
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from hotfolder.config import Config
from hotfolder.slots.child import attach
from hotfolder.slots.raykeeper import Keeper, first_line

log = logging.getLogger("hotfolder.raybridge")

# The cluster counts as gone after its GCS refuses connections this many times in a row,
# probed once a second (a Ray driver would only notice after a minute, then exit).
PROBE_SECONDS = 1.0
PROBE_FAILURES = 3
# Ray replaces a loopback node address by the machine's outward one unless this is "0";
# a private Ray, and a cluster started on 127.0.0.1, stay on loopback with it.
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def reachable(address: str, timeout_seconds: float = 1.0) -> bool:
    """Whether something accepts connections at HOST:PORT (the cluster's GCS)."""
    host, port = split_address(address)
    try:
        with socket.create_connection((host, port), timeout=timeout_seconds):
            return True
    except OSError:
        return False


class Bridge:
    def __init__(self, conn: Connection, config: Config, names: list[str]) -> None:
        self.conn = conn
        self.config = config
        self.names = names
        self.gcs_address: str | None = None
        self.keepers: dict[str, Keeper] = {}
        self._send_lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        with self._send_lock:
            try:
                self.conn.send(message)
            except OSError:
                os._exit(0)  # the service is gone

    def unreachable(self, why: str) -> NoReturn:
        """The cluster is gone: say so and end this process (the service starts another)."""
        log.error("%s", why)
        self.send(("unreachable", why, self.gcs_address))
        os._exit(3)

    # --- joining ---

    def connect(self) -> None:
        """Join the cluster, or start a private Ray; `unreachable` if there is none."""
        address = self.config.ray.address
        if address is None:
            os.environ.pop("RAY_ADDRESS", None)  # private means private, whatever the shell says
            os.environ.setdefault(LOOPBACK_ENV, "0")
        else:
            target = self._resolve(address)
            if not reachable(target):
                self.gcs_address = target
                self.unreachable(f"no Ray cluster answers at {target}")
            if is_loopback(split_address(target)[0]):
                os.environ.setdefault(LOOPBACK_ENV, "0")
            if address != "auto":
                # ("auto" stays auto: then Ray itself picks up this machine's auth token.)
                address = target
        import ray

        started = time.monotonic()
        try:
            ray.init(address=address, **self._init_options())
        except Exception as e:  # whatever Ray raises, this bridge is done; the service retries
            where = address or "this machine"
            self.unreachable(f"cannot join the Ray cluster at {where}: {first_line(e)}")
        self.gcs_address = ray.get_runtime_context().gcs_address
        log.info("joined Ray at %s in %.1f s", self.gcs_address, time.monotonic() - started)
        self.send(("connected", self.gcs_address))

    def _resolve(self, address: str) -> str:
        if address != "auto":
            return address
        from ray._private.services import canonicalize_bootstrap_address

        try:
            found = canonicalize_bootstrap_address("auto")
        except (ConnectionError, ValueError) as e:
            found = None
            log.info("looking for a Ray cluster on this machine: %s", e)
        if not found:
            self.unreachable(
                "ray.address is auto, but no Ray cluster runs on this machine "
                "(start one with `ray start --head`, or give HOST:PORT)"
            )
        return str(found)

    def _init_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "namespace": "hotfolder",
            "logging_level": logging.WARNING,
            "log_to_driver": True,
        }
        if self.config.ray.address is None:
            ray_config = self.config.ray
            cpus = ray_config.workers * ray_config.num_cpus_per_worker
            options.update(num_cpus=max(1, math.ceil(cpus)), include_dashboard=False)
        return options

    # --- running ---

    def run(self) -> None:
        self.connect()
        threading.Thread(target=self._probe_loop, name="hotfolder-ray-probe", daemon=True).start()
        for name in self.names:
            self.keepers[name] = Keeper(self, name)
        threading.Thread(target=self._receive_loop, name="hotfolder-ray-recv", daemon=True).start()
        for keeper in self.keepers.values():
            keeper.start()
        for keeper in self.keepers.values():
            keeper.join()
        import ray

        ray.shutdown()

    def cluster_alive(self) -> bool:
        return self.gcs_address is None or reachable(self.gcs_address)

    def _probe_loop(self) -> None:
        failures = 0
        while True:
            time.sleep(PROBE_SECONDS)
            failures = 0 if self.cluster_alive() else failures + 1
            if failures >= PROBE_FAILURES:
                self.unreachable(f"the Ray cluster at {self.gcs_address} stopped answering")

    def _receive_loop(self) -> None:
        while True:
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the service is gone; Ray ends the actors this driver owns
            keeper = self.keepers.get(message[1]) if len(message) > 1 else None
            if keeper is None:
                if message[0] == "stop":
                    self.send(("stopped", message[1]))  # stopped before this bridge began
                continue
            kind = message[0]
            if kind == "ticket":
                keeper.submit(message[2])
            elif kind == "cancel":
                keeper.call("cancel", message[2])
            elif kind == "abort":
                keeper.call("abort")
            elif kind == "kill":
                keeper.kill(message[2])
            elif kind == "stop":
                keeper.stop()


def main(argv: list[str]) -> int:
    fd, parent_pid = int(argv[0]), int(argv[1])
    conn = attach(fd, parent_pid)
    try:
        _kind, config_json, names = conn.recv()
    except (EOFError, OSError):
        return 0
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s ray bridge: %(name)s: %(message)s",
        stream=sys.stderr,
    )
    bridge = Bridge(conn, Config.model_validate_json(config_json), names)
    with contextlib.suppress(KeyboardInterrupt):
        bridge.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
