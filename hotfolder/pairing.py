"""What the files of one folder that share a stem come to: a job, a refusal, or more waiting
(and what for).

`Pairing.decide` only reads (the files, the clock it is given, the probe and defaults caches);
it never moves a file. The intake acts on what it returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hotfolder import assets, companions, images, sidecar
from hotfolder.assets import Asset
from hotfolder.config import Config
from hotfolder.defaults import FolderDefaults
from hotfolder.errors import Reason, Rejected
from hotfolder.names import split_name
from hotfolder.probes import ImageProbes
from hotfolder.settle import StabilityTracker
from hotfolder.sidecar import JobSpec


@dataclass
class Group:
    """The files of one folder that share a stem: an image, its sidecar, strays."""

    images: list[Path] = field(default_factory=list)
    sidecars: list[Path] = field(default_factory=list)
    settled: dict[Path, bool] = field(default_factory=dict)
    mtime_ns: dict[Path, int] = field(default_factory=dict)
    # Some file is as an earlier tick's look left it (scan.Sightings.take): look again
    # before deciding.
    quiet: bool = False

    def add(
        self, path: Path, kind: str, *, settled: bool, mtime_ns: int, quiet: bool = False
    ) -> None:
        (self.images if kind == "image" else self.sidecars).append(path)
        self.settled[path] = settled
        self.mtime_ns[path] = mtime_ns
        self.quiet = self.quiet or quiet

    def members(self) -> list[Path]:
        return self.images + self.sidecars

    def all_settled(self) -> bool:
        return all(self.settled[p] for p in self.members())

    def first(self) -> tuple[int, Path]:
        """(mtime, path) of its oldest image, or of its oldest sidecar if it has no image."""
        return min((self.mtime_ns[p], p) for p in (self.images or self.sidecars))

    def alone(self, image: Path) -> Group:
        """The group of this one image, without its siblings."""
        return Group(
            images=[image],
            settled={image: self.settled[image]},
            mtime_ns={image: self.mtime_ns[image]},
        )


@dataclass(frozen=True)
class Ready:
    """A pair that passed every check, waiting for its place in this tick's batch."""

    image: Path
    sidecar: Path | None
    spec: JobSpec
    mtime_ns: int
    # The reference images `images:` names, read and checked: the job's own copies.
    references: tuple[Asset, ...] = ()
    # A camera's RAW file beside the JPEG or HEIF that is edited: it travels with the job.
    companions: tuple[Path, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.image, *((self.sidecar,) if self.sidecar else ()), *self.companions)


# What a drop waits for, as its `waiting` status says it (SPEC: "Waiting, overflow and retries").
COPYING = "waiting for the file to finish copying"
FOR_SIDECAR = "waiting for its sidecar"
FOR_IMAGE = "waiting for its image"
# An image that folder defaults make a job waits one settle time more for a sidecar to win.
MAYBE_SIDECAR = "waiting a moment in case a sidecar follows"


@dataclass(frozen=True)
class Waiting:
    """Files seen but not decided yet, and what they wait for."""

    files: tuple[Path, ...]
    detail: str


@dataclass(frozen=True)
class Refusal:
    """Files that go to failed/ together, with their SPEC reason code and what to do about it."""

    files: tuple[Path, ...]
    code: Reason
    message: str
    details: str = ""
    # The request, when its sidecar was read and fit though the image was refused: its
    # status still shows the instruction, and its `notify_url` is told.
    spec: JobSpec | None = None


class Pairing:
    def __init__(
        self,
        config: Config,
        tracker: StabilityTracker,
        probes: ImageProbes,
        defaults: FolderDefaults,
    ) -> None:
        self.config = config
        self.tracker = tracker
        self.probes = probes
        self.defaults = defaults

    def decide(self, stem: str, group: Group, now: float) -> list[Ready | Refusal | Waiting]:
        """What to do now with one group, in order: refusals and waits, and at most one
        Ready, last."""
        images_, beside = companions.split(sorted(group.images))
        sidecars = sorted(group.sidecars)
        if len({split_name(p.name)[0] for p in images_}) > 1:
            return self._case_clash(stem, group)
        if images_ and sidecars and (len(images_) > 1 or len(sidecars) > 1):
            if not group.all_settled():
                return [Waiting((*images_, *sidecars, *beside), COPYING)]
            names = ", ".join(p.name for p in group.members())
            return [
                Refusal(
                    (*images_, *sidecars, *beside),
                    Reason.ambiguous,
                    f"{names}: more than one file for the job {stem}",
                    "Drop exactly one image and one NAME.yaml (or NAME.yml) per name.",
                )
            ]
        if not images_:
            return [self._lone_sidecar(stem, lone, group, now) for lone in sidecars]
        if len(images_) > 1:
            # Several images and no sidecar: each stands alone (defaults may make them jobs).
            outcomes: list[Ready | Refusal | Waiting] = []
            for image in images_:
                outcomes += self.decide(stem, group.alone(image), now)
                if outcomes and isinstance(outcomes[-1], Ready):
                    break
            return outcomes
        side = sidecars[0] if sidecars else None
        return [self._pair(stem, images_[0], side, group, now, beside=tuple(beside))]

    def _case_clash(self, stem: str, group: Group) -> list[Ready | Refusal | Waiting]:
        """Images whose names differ only in letter case or Unicode form: which one is meant?"""
        # Named after the image dropped first (its station is the one most likely polling
        # for it), the reason's words and the status file alike.
        first = group.first()[1]
        files = (first, *sorted(set(group.images) - {first}), *sorted(group.sidecars))
        if not group.all_settled():
            return [Waiting(files, COPYING)]
        names = ", ".join(p.name for p in sorted(group.members()))
        return [
            Refusal(
                files,
                Reason.ambiguous,
                f"{names}: names that differ only in letter case (or in how an accent is "
                f"written) are the same name on Windows and macOS shares, so the job "
                f"{split_name(first.name)[0]} is ambiguous",
                "Rename one of the images (IMG_1.jpg and IMG_1b.jpg, say) or drop them in "
                "different folders, each with its own sidecar.",
            )
        ]

    def _lone_sidecar(self, stem: str, lone: Path, group: Group, now: float) -> Refusal | Waiting:
        wait = self.config.sidecar_wait_seconds
        settled_at = self.tracker.settled_at(lone)
        if not group.settled[lone] or settled_at is None:
            return Waiting((lone,), COPYING)
        if now < settled_at + wait:
            return Waiting((lone,), FOR_IMAGE)
        return Refusal(
            (lone,),
            Reason.no_image,
            f"{lone.name} has no image next to it after {wait:g} s",
            f"Drop the image ({stem}.jpg, .png, …) in the same folder as the sidecar.",
        )

    def _pair(
        self,
        stem: str,
        image: Path,
        side: Path | None,
        group: Group,
        now: float,
        *,
        beside: tuple[Path, ...] = (),
    ) -> Ready | Refusal | Waiting:
        """One image, at most one sidecar and a RAW file beside the image, if the camera wrote
        one: a job once all of them settled and every check passed."""
        files = (image, *((side,) if side else ()), *beside)
        if not all(group.settled[p] for p in files):
            return Waiting(files, COPYING)
        settled_at = self.tracker.settled_at(image) or now
        # The sidecar is read while the image decodes; what the image says comes first.
        probed = self.probes.start(image, settled_at=settled_at, now=now)
        outcome = self._with_sidecar(
            stem, image, side, group, now=now, settled_at=settled_at, beside=beside
        )
        problem = probed()
        if isinstance(problem, Rejected):
            spec = outcome.spec if isinstance(outcome, Ready) else None
            return Refusal(files, problem.code, problem.message, spec=spec)
        if isinstance(problem, images.IncompleteImage):
            return Waiting(files, COPYING)
        return outcome

    def _with_sidecar(
        self,
        stem: str,
        image: Path,
        side: Path | None,
        group: Group,
        *,
        now: float,
        settled_at: float,
        beside: tuple[Path, ...],
    ) -> Ready | Refusal | Waiting:
        """The pair's outcome from its sidecar and its folders' defaults, if its image is fit."""
        files = (image, *((side,) if side else ()), *beside)
        layers = self.defaults.layers(image)
        if isinstance(layers, Rejected):
            return Refusal(files, layers.code, layers.message)
        if side is None:
            wait = self.config.sidecar_wait_seconds
            if not sidecar.has_instruction(layers):
                if now < settled_at + wait:
                    return Waiting(files, FOR_SIDECAR)
                return Refusal(
                    files,
                    Reason.no_sidecar,
                    f"{image.name} has no sidecar after {wait:g} s",
                    f"Drop {stem}.yaml with at least `instruction: ...` next to the image, "
                    "or put an instruction in a _defaults.yaml of its folder.",
                )
            # Defaults make it a job; a short grace lets a sidecar written just after still win.
            if now < settled_at + self.config.settle_seconds:
                return Waiting(files, MAYBE_SIDECAR)
        try:
            if side is not None:
                try:
                    own = sidecar.read_layer(side, max_bytes=self.config.limits.max_sidecar_bytes)
                except sidecar.IncompleteSidecar:
                    # As an image that does not end yet: wait, then refuse.
                    since = self.tracker.settled_at(side) or now
                    if now < since + self.config.incomplete_image_seconds:
                        return Waiting(files, COPYING)
                    raise
                layers = [*layers, (side.name, own)]
            spec = sidecar.resolve(layers, config=self.config)
            references = assets.take(
                spec.images,
                image,
                self.defaults.inbox,
                limits=self.config.limits,
                source=sidecar.source_of(layers, "images"),
            )
        except Rejected as e:
            return Refusal(files, e.code, e.message, e.details)
        return Ready(
            image=image,
            sidecar=side,
            spec=spec,
            mtime_ns=group.mtime_ns[image],
            references=references,
            companions=beside,
        )
