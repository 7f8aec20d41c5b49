"""`hotfolder edit`: one image, one instruction, no service; a progress bar on stderr.

The same edit path as a job in the service (`render`: upright RGB in, the editor, back to
the input's size, ICC profile and metadata out), without the folders.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from hotfolder import exifdata, fsops, images, render
from hotfolder.config import Config
from hotfolder.editors import Editor, make_editor
from hotfolder.errors import ConfigError, HotfolderError
from hotfolder.sidecar import MAX_REFERENCES, MAX_SEED
from hotfolder.slots.base import Pixels, Ticket

FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
JPEG_WEBP_QUALITY = 92
BAR_WIDTH = 30


class ProgressBar:
    """`[#######.......] 2/4 steps 3.1 s` redrawn in place on a stream (stderr)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.started = time.monotonic()
        self.drawn = False

    def __call__(self, step: int, steps: int) -> None:
        done = BAR_WIDTH * step // max(steps, 1)
        elapsed = time.monotonic() - self.started
        bar = "#" * done + "." * (BAR_WIDTH - done)
        self.stream.write(f"\r[{bar}] {step}/{steps} steps {elapsed:.1f} s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def default_output(image: Path) -> Path:
    """`NAME-edited.png` next to the input, or `NAME-edited-2.png`, ...: never over a file."""
    candidate = image.with_name(f"{image.stem}-edited.png")
    number = 2
    while candidate.exists():
        candidate = image.with_name(f"{image.stem}-edited-{number}.png")
        number += 1
    return candidate


def edit_one(
    config: Config,
    image: Path,
    instruction: str,
    *,
    seed: int | None,
    preset: str | None,
    out: Path | None,
    editor: Editor | None = None,
    stream: TextIO | None = None,
    references: Sequence[Path] = (),
) -> Path:
    """Edit `image` as the service would and write the result to `out`; return its path.

    `references` are reference images for edit-plus (at most two), after the image in the
    pipeline's list. Without `seed` a random one is drawn and printed; without `preset` the configured
    default is used; without `out` the result goes next to the input (`default_output`).
    `editor` reuses a loaded editor instead of making one from `config`. Bad arguments
    raise ConfigError; an unreadable image raises Rejected, as in the service.
    """
    err = sys.stderr if stream is None else stream
    preset_name = preset or config.default_preset
    if preset_name not in config.presets:
        known = ", ".join(sorted(config.presets))
        raise ConfigError(f"preset {preset_name!r} is not configured; use one of: {known}")
    instruction = instruction.strip()
    limit = config.limits.max_instruction_chars
    if not 1 <= len(instruction) <= limit:
        raise ConfigError(f"the instruction must be 1..{limit} characters, not {len(instruction)}")
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be a whole number 0..{MAX_SEED}, not {seed}")
    target = out if out is not None else default_output(image)
    fmt = FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ConfigError(
            f"cannot tell the output format from {target.name!r}; end it in .png, .jpg or .webp"
        )
    # Said now, not after a minute of editing (a missing folder is made when it is written).
    above = next((p for p in target.parents if os.path.lexists(p)), None)
    if above is not None and not above.is_dir():
        raise ConfigError(f"-o {target}: {above} is not a folder; write the result into one")
    used_seed = seed if seed is not None else secrets.randbits(32)
    refs = _references(config, references)

    ticket = _ticket(config, image, instruction, seed=used_seed, preset_name=preset_name, fmt=fmt)
    ticket = dataclasses.replace(ticket, references=refs)
    if editor is None:
        editor = make_editor(config)
    if err.isatty():
        # For a person at a terminal; a script that fails to load gets one line, the error.
        err.write(f"loading {editor.name} editor ({config.editor.model})...\n")
    editor.load()
    err.write(f"editing {image} with preset {preset_name}, seed {used_seed}\n")
    err.flush()
    bar = ProgressBar(err)
    try:
        data = render.render(editor, ticket, bar)
    finally:
        bar.close()
    try:
        fsops.write_atomic(target, data)
    except OSError as e:
        raise HotfolderError(
            f"cannot write {target}: {e.strerror or e}; choose another -o, or make room there"
        ) from e
    err.write(f"wrote {target}\n")
    err.flush()
    return target


def _references(config: Config, references: Sequence[Path]) -> tuple[Pixels, ...]:
    """The `--ref` images, checked and decoded like the image to edit."""
    if not references:
        return ()
    if len(references) > MAX_REFERENCES:
        raise ConfigError(
            f"{len(references)} --ref images; edit-plus takes at most {MAX_REFERENCES}"
        )
    if config.editor.pipeline != "edit-plus":
        raise ConfigError(
            f"--ref needs editor.pipeline: edit-plus (the configuration has "
            f"{config.editor.pipeline}, which takes one image)"
        )
    for path in references:
        if not path.is_file():
            raise ConfigError(f"--ref {path} is not a file; pass a reference image")
    return tuple(
        Pixels.of(images.load_for_edit(path, limits=config.limits).image) for path in references
    )


def _ticket(
    config: Config, image: Path, instruction: str, *, seed: int, preset_name: str, fmt: str
) -> Ticket:
    """The job as a slot would get it: the decoded image and the edit's parameters."""
    preset = config.presets[preset_name]
    source = images.load_for_edit(image, limits=config.limits)
    return Ticket.with_image(
        source.image,
        job_id="",
        name=image.stem,
        icc_profile=source.icc_profile,
        instruction=instruction,
        seed=seed,
        preset_name=preset_name,
        preset=preset,
        steps=preset.steps,
        true_cfg_scale=preset.true_cfg_scale,
        negative_prompt=preset.negative_prompt,
        output_format=fmt,
        output_quality=JPEG_WEBP_QUALITY,
        output_size="input",
        timeout_seconds=preset.timeout_seconds,
        original_size=source.original_size,
        exif=exifdata.without_gps(source.exif),
        metadata={
            "instruction": instruction,
            "preset": preset_name,
            "seed": str(seed),
            "software": "hotfolder",
        },
    )
