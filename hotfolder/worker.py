"""One worker: take the next job, edit it, write the result, archive the inputs, report.

A failing job never stops the loop: it ends in failed/ with its reason and the
worker takes the next one.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from hotfolder import fsops, images
from hotfolder.config import Config
from hotfolder.editors.base import Editor, EditRequest, Interrupted, OutOfMemory
from hotfolder.errors import Reason, Rejected
from hotfolder.layout import Layout
from hotfolder.notify import Notifier
from hotfolder.rejection import write_reason
from hotfolder.sidecar import JobSpec
from hotfolder.spool import FINAL_STATES, JobState, Manifest, Spool
from hotfolder.status import Board, iso, status_from_manifest

log = logging.getLogger(__name__)

RESULT_SUFFIXES = {"png": ".png", "jpeg": ".jpeg", "webp": ".webp"}
# After a result cannot be written (full disk, read-only share), wait before trying again.
WRITE_BACKOFF_SECONDS = 10.0
# Progress reaches the status file at most this often (a Qwen step takes seconds).
PROGRESS_MIN_SECONDS = 0.5


class Worker:
    def __init__(
        self,
        layout: Layout,
        config: Config,
        spool: Spool,
        board: Board,
        editor: Editor,
        *,
        paused: Callable[[], bool] = lambda: False,
        notifier: Notifier | None = None,
    ) -> None:
        self.layout = layout
        self.config = config
        self.spool = spool
        self.board = board
        self.editor = editor
        self.paused = paused
        self.notifier = notifier
        self.wake = threading.Event()
        self.stopping = threading.Event()  # finish the job in flight, take no more
        self.aborting = threading.Event()  # interrupt the job in flight, put it back
        self._cancels: set[str] = set()
        self._cancel_lock = threading.Lock()
        self.current: Manifest | None = None
        # Monotonic time after which the job in flight counts as over its time limit.
        self.current_deadline: float | None = None
        self._thread: threading.Thread | None = None
        self._backoff_until = 0.0

    # --- lifecycle ---

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="hotfolder-worker")
        self._thread.start()

    def stop(self, abort: bool = False) -> None:
        self.stopping.set()
        if abort:
            self.aborting.set()
        self.wake.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def cancel(self, name: str) -> bool:
        """Ask the job in flight named `name` to stop at its next step."""
        with self._cancel_lock:
            current = self.current
            if current is None or current.name != name:
                return False
            self._cancels.add(name)
            return True

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                worked = self.run_one()
            except Exception:
                log.exception("worker: unexpected error; going on with the next job")
                worked = False
            if not worked:
                self.wake.wait(timeout=1.0)
                self.wake.clear()

    def ready(self) -> bool:
        return not self.paused() and time.monotonic() >= self._backoff_until

    def run_one(self) -> bool:
        """Take and process one job; return False if there was nothing to take."""
        if not self.ready() or self.stopping.is_set():
            return False
        if not self.finish_unfinished():
            return False
        manifest = self.spool.claim()
        if manifest is None:
            return False
        self.process(manifest)
        return True

    # --- one job ---

    def process(self, manifest: Manifest) -> None:
        now = time.time()
        manifest = manifest.model_copy(
            update={"state": JobState.processing, "started_at": iso(now), "head": False}
        )
        self.spool.update(manifest)
        with self._cancel_lock:
            self.current = manifest
        self.board.processing(manifest)
        self.board.publish()
        log.info("processing %s (attempt %d)", manifest.name, manifest.attempts)
        try:
            self._edit(manifest)
        finally:
            with self._cancel_lock:
                self.current = None
                self.current_deadline = None
                self._cancels.discard(manifest.name)
            self.board.publish()

    def _edit(self, manifest: Manifest) -> None:
        spec = JobSpec.model_validate(manifest.spec)
        preset = self.config.presets.get(spec.preset)
        if preset is None:
            self.fail(
                manifest,
                Reason.invalid_sidecar,
                f"preset {spec.preset!r} is no longer configured",
                "Choose one of: " + ", ".join(sorted(self.config.presets)),
            )
            return
        deadline = time.monotonic() + preset.timeout_seconds
        self.current_deadline = deadline
        shown_at = -PROGRESS_MIN_SECONDS

        def progress(step: int, steps: int) -> None:
            nonlocal shown_at
            if self.aborting.is_set():
                raise Interrupted("stop")
            if manifest.name in self._cancels:
                raise Interrupted("cancel")
            now = time.monotonic()
            if now > deadline:
                raise Interrupted("timeout")
            # Each update is an atomic write; fast steps (small models, the identity editor)
            # would spend more time writing progress than editing.
            if now - shown_at >= PROGRESS_MIN_SECONDS:
                shown_at = now
                self.board.progress(manifest.job_id, step, steps)

        image_path = self.spool.path_in(self.layout.processing, manifest, manifest.image)
        try:
            source = images.load_for_edit(image_path, limits=self.config.limits)
            request = EditRequest(
                image=source.image,
                instruction=spec.instruction,
                seed=manifest.seed,
                preset_name=spec.preset,
                preset=preset,
                steps=spec.steps or preset.steps,
                true_cfg_scale=(
                    spec.true_cfg_scale
                    if spec.true_cfg_scale is not None
                    else preset.true_cfg_scale
                ),
                negative_prompt=(
                    spec.negative_prompt
                    if spec.negative_prompt is not None
                    else preset.negative_prompt
                ),
            )
            result = self.editor.edit(request, progress)
            output = result.image
            if spec.output.size == "input":
                output = images.resize_to(output, source.size)
            data = images.encode_result(
                output,
                fmt=spec.output.format,
                quality=spec.output.quality,
                icc_profile=source.icc_profile,
                metadata={
                    "instruction": spec.instruction,
                    "preset": spec.preset,
                    "seed": str(manifest.seed),
                    "model": result.model,
                    "job_id": manifest.job_id,
                    "software": "hotfolder",
                },
            )
        except Interrupted as e:
            self._interrupted(manifest, e.why, preset.timeout_seconds)
            return
        except OutOfMemory as e:
            self.fail(
                manifest,
                Reason.out_of_memory,
                f"the GPU ran out of memory: {e}",
                "Try a smaller image, or set editor.offload: model in the configuration.",
            )
            return
        except Rejected as e:
            self.fail(manifest, e.code, e.message, e.details)
            return
        except Exception as e:
            log.exception("edit failed for %s", manifest.name)
            self.fail(
                manifest,
                Reason.edit_failed,
                f"the edit failed: {type(e).__name__}: {e}",
                traceback.format_exc(),
            )
            return

        result_path = self.layout.outbox / f"{manifest.name}{RESULT_SUFFIXES[spec.output.format]}"
        try:
            fsops.write_atomic(result_path, data)
        except OSError as e:
            # A full disk or a read-only share is not the job's fault: keep it queued and wait.
            log.error("cannot write %s: %s; job goes back to the queue", result_path, e)
            self.board.notes["worker"] = f"cannot write results: {e}"
            self._backoff_until = time.monotonic() + WRITE_BACKOFF_SECONDS
            self.spool.requeue(manifest)
            self.board.queued(self.spool.find(manifest.name) or manifest)
            return
        self.board.notes.pop("worker", None)
        manifest = manifest.model_copy(
            update={
                "state": JobState.completed,
                "completed_at": iso(time.time()),
                "result_path": self.layout.relative(result_path),
            }
        )
        if self._end(manifest):
            log.info("completed %s -> %s", manifest.name, manifest.result_path)

    def _interrupted(self, manifest: Manifest, why: str, timeout_seconds: float) -> None:
        if why == "stop":
            log.info("stopping: %s goes back to the head of the queue", manifest.name)
            self.spool.requeue(manifest)
            self.board.queued(self.spool.find(manifest.name) or manifest)
        elif why == "cancel":
            self.fail(
                manifest, Reason.cancelled, "cancelled while processing", state=JobState.cancelled
            )
        else:
            self.fail(
                manifest,
                Reason.timeout,
                f"the edit took longer than {timeout_seconds:g} s",
                "Raise the preset's job_timeout_seconds, or use a faster preset.",
            )

    # --- endings (also replayed by recovery) ---

    def finish_unfinished(self) -> bool:
        """Finish jobs whose ending was cut short (say, failed/ was read-only); True if none are left."""
        for manifest in self.spool.unfinished():
            if self.current is None or manifest.name != self.current.name:
                try:
                    self.finish(manifest)
                except OSError as e:
                    self._ending_failed(manifest, e)
                    return False
        return True

    def _ending_failed(self, manifest: Manifest, error: OSError) -> None:
        # The job stays in processing/ with its final state; it is finished once the disk lets us.
        log.error(
            "cannot finish %s (%s): %s; retrying in %g s",
            manifest.name,
            manifest.state.value,
            error,
            WRITE_BACKOFF_SECONDS,
        )
        self.board.notes["worker"] = f"cannot finish {manifest.name}: {error.strerror or error}"
        self._backoff_until = time.monotonic() + WRITE_BACKOFF_SECONDS

    def fail(
        self,
        manifest: Manifest,
        code: Reason,
        message: str,
        details: str = "",
        *,
        state: JobState = JobState.failed,
    ) -> None:
        manifest = manifest.model_copy(
            update={
                "state": state,
                "completed_at": iso(time.time()),
                "error_code": code.value,
                "error": message,
                "error_details": details or None,
            }
        )
        if self._end(manifest):
            log.warning("%s %s: %s: %s", state.value, manifest.name, code.value, message)

    def _end(self, manifest: Manifest) -> bool:
        """Record the final state, then move the files; False if the disk refused (retried later)."""
        self.spool.update(manifest)
        try:
            self.finish(manifest)
        except OSError as e:
            self._ending_failed(manifest, e)
            return False
        return True

    def finish(self, manifest: Manifest) -> None:
        """Move the inputs where they belong and publish the final status (idempotent)."""
        assert manifest.state in FINAL_STATES
        if manifest.state == JobState.completed:
            destination: Path | None = self.layout.archive if self.config.keep_inputs else None
        else:
            destination = self.layout.failed
            write_reason(
                self.layout.reason_path(manifest.name),
                manifest.error_code or Reason.edit_failed.value,
                manifest.error or "",
                manifest.error_details or "",
                manifest.files(),
            )
        status = status_from_manifest(manifest)
        self.spool.finish(manifest, destination, announce=lambda: self.board.finished(status))
        url = manifest.spec.get("notify_url")
        if url and self.notifier is not None:
            self.notifier.send(url, status.to_json())
