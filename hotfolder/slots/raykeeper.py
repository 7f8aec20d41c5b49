"""One Ray slot's actor, kept alive by the bridge: create it, relay its events, replace it.

A `Keeper` runs in the bridge process (slots.raybridge), one thread per slot. It creates
the actor (`EngineHost`) with the slot's resources, says where Ray placed it, polls its
events and forwards them to the service; when the actor dies (its process killed, its
node lost, a hung editor the service asked to kill) it reports the jobs in it lost and
starts another. A ticket is only handed to an actor whose editor is loaded; one that
arrives while the actor is being replaced goes straight back to the queue.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from hotfolder.slots.base import Outcome, Ticket
from hotfolder.slots.rayactor import ACTOR_CONCURRENCY, EngineHost, node_label

if TYPE_CHECKING:
    from hotfolder.slots.raybridge import Bridge

log = logging.getLogger("hotfolder.raybridge")

POLL_SECONDS = 1.0
# While Ray finds no node with room for the actor, say so after this long (and keep waiting).
PLACEMENT_NOTE_SECONDS = 10.0
# After an actor that never loaded its editor, wait this long before the next (then longer).
RESTART_BACKOFF_SECONDS = (2.0, 10.0, 30.0, 120.0, 300.0)
# An actor that stays "temporarily unavailable" this long counts as dead.
UNAVAILABLE_SECONDS = 10.0


def first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]


def why_dead(error: BaseException) -> str:
    """A short reason from Ray's long actor-death message."""
    text = str(error)
    if "creation task" in text:
        # The constructor raised (hotfolder missing on that node, ...): the traceback's end.
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else first_line(error)
    for marker in ("Worker exit detail:", "The actor is dead because"):
        if marker in text:
            detail = text.split(marker, 1)[1].strip().split(". ")[0]
            return detail.rstrip(".")
    return first_line(error)


def kill_actor(actor: Any) -> None:
    """End an actor for good; one that is already gone (or a cluster that is) is fine."""
    import ray

    try:
        ray.kill(actor, no_restart=True)
    except Exception as e:  # Ray raises several kinds here; none changes what comes next
        log.debug("ending an actor: %s", e)


class Keeper:
    def __init__(self, bridge: Bridge, name: str) -> None:
        import ray

        self.bridge = bridge
        self.name = name
        settings = bridge.config.ray
        self.device = settings.device
        options: dict[str, Any] = {
            "num_cpus": settings.num_cpus_per_worker,
            "num_gpus": settings.num_gpus_per_worker,
            "max_concurrency": ACTOR_CONCURRENCY,
            "max_restarts": 0,  # the keeper restarts it, and tells the service first
            "scheduling_strategy": "SPREAD",  # one worker per node while nodes have room
        }
        self.remote: Any = ray.remote(**options)(EngineHost)
        self.config_json = bridge.config.model_dump_json()
        self._lock = threading.Lock()
        self._actor: Any = None
        self._live = False  # the actor's editor is loaded and nothing went wrong since
        self._kill_reason: str | None = None
        self._stopping = threading.Event()
        self.info: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._keep, name=f"hotfolder-keep-{name}")

    # --- from the bridge's receiving thread ---

    def start(self) -> None:
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def submit(self, ticket: Ticket) -> None:
        with self._lock:
            if self._live and self._actor is not None:
                self._actor.submit.remote(ticket)
                return
        # Sent while this slot's actor was being replaced: back to the queue, no attempt lost.
        self._send_event(("edited", ticket.job_id))
        self._send_event(
            (
                "outcome",
                Outcome(
                    job_id=ticket.job_id,
                    error_code="stop",
                    error="its Ray worker was being replaced",
                ),
            )
        )

    def call(self, method: str, *args: Any) -> None:
        with self._lock:
            if self._actor is not None:
                getattr(self._actor, method).remote(*args)

    def kill(self, why: str) -> None:
        with self._lock:
            if self._actor is not None:
                self._kill_reason = why
                kill_actor(self._actor)

    def stop(self) -> None:
        self._stopping.set()
        self.call("stop")

    # --- the keeper's thread ---

    def _send_event(self, event: tuple[Any, ...]) -> None:
        self.bridge.send(("event", self.name, event))

    def _keep(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            actor = self._create()
            became_ready = False
            if actor is not None:
                ended, why = self._watch(actor)
                became_ready = self._retire(actor, ended, why)
            if self._stopping.is_set():
                break
            failures = 0 if became_ready else failures + 1
            if failures:
                delay = RESTART_BACKOFF_SECONDS[min(failures, len(RESTART_BACKOFF_SECONDS)) - 1]
                self._stopping.wait(delay)
        self.bridge.send(("stopped", self.name))

    def _create(self) -> Any:
        """A new actor, placed and loading its editor; None if it could not start or the
        slot was stopped meanwhile."""
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        actor = self.remote.remote(self.config_json, self.device)
        with self._lock:
            self._actor, self._kill_reason = actor, None
        where = actor.where.remote()
        waited = 0.0
        info: dict[str, Any] | None = None
        while info is None and not self._stopping.is_set():
            try:
                info = ray.get(where, timeout=POLL_SECONDS)
            except GetTimeoutError:
                waited += POLL_SECONDS
                if waited == PLACEMENT_NOTE_SECONDS:
                    self.bridge.send(("waiting", self.name, self._no_room_note()))
            except RayError as e:
                # Its constructor failed: hotfolder[ray] missing on that node, a bad config...
                self._send_event(("load_failed", f"a Ray worker could not start: {why_dead(e)}"))
                break
        if info is None:
            with self._lock:
                self._actor = None
            kill_actor(actor)
            return None
        log.info("%s: actor %s on %s", self.name, info["actor_id"][:8], node_label(info))
        self.info = info
        self.bridge.send(("placed", self.name, info))
        return actor

    def _no_room_note(self) -> str:
        settings = self.bridge.config.ray
        return (
            f"waiting for room on the Ray cluster: no node has {settings.num_gpus_per_worker:g} "
            f"GPU and {settings.num_cpus_per_worker:g} CPU free for worker {self.name} "
            "(`ray status` shows what each node has)"
        )

    def _watch(self, actor: Any) -> tuple[bool, str]:
        """Forward the actor's events until its engine ends (True) or it dies (False, why)."""
        import ray
        from ray.exceptions import ActorUnavailableError, GetTimeoutError, RayError

        unavailable_since: float | None = None
        while True:
            try:
                events = ray.get(actor.poll.remote(POLL_SECONDS), timeout=POLL_SECONDS + 30)
            except (ActorUnavailableError, GetTimeoutError) as e:
                now = time.monotonic()
                unavailable_since = unavailable_since or now
                if now - unavailable_since > UNAVAILABLE_SECONDS:
                    return False, why_dead(e)
                time.sleep(0.2)
                continue
            except RayError as e:  # RayActorError (it died), or the task itself failed
                return False, why_dead(e)
            unavailable_since = None
            for event in events:
                if event[0] == "ended":
                    return True, ""
                self._forward(event)

    def _forward(self, event: tuple[Any, ...]) -> None:
        if event[0] == "ready":
            with self._lock:
                self._live = True
        elif event[0] == "load_failed":
            event = (
                "load_failed",
                f"cannot load the editor on {node_label(self.info)}: {event[1]}",
            )
        self._send_event(event)

    def _retire(self, actor: Any, ended: bool, why: str) -> bool:
        """After its engine ended or it died; True if its editor had loaded."""
        with self._lock:
            became_ready = self._live
            kill_reason = self._kill_reason
        if not ended and not kill_reason and not self._cluster_alive():
            self.bridge.unreachable(f"the Ray cluster at {self.bridge.gcs_address} went away")
        # An engine that ends by itself after loading (not stopped) lost what it held too.
        lost_jobs = not ended or (became_ready and not self._stopping.is_set())
        if ended and lost_jobs:
            why = "its editor thread ended"
        with self._lock:
            self._live, self._actor = False, None
            if lost_jobs:
                where = node_label(self.info)
                lost = (
                    f"{kill_reason} (its Ray actor on {where} was killed)"
                    if kill_reason
                    else f"its Ray actor on {where} died: {why}"
                )
                self.bridge.send(("lost", self.name, lost))
        kill_actor(actor)  # ended: it has nothing left to do; died: make sure
        return became_ready

    def _cluster_alive(self) -> bool:
        # `ray stop` kills the actors a moment before the GCS: look twice before blaming the job.
        time.sleep(1.0)
        return self.bridge.cluster_alive()
